/// One task waiting for its deadline on an `IOLoop`. Its heap position is kept so that a cancelled
/// timer leaves the heap at once: a connection's idle timer is set and cancelled on every request,
/// and lazily dropped entries would pile up for the whole idle timeout.
package final class LoopTimer: @unchecked Sendable {
    package let deadline: UInt64
    /// Ties between equal deadlines go to the timer set first.
    package var sequence: UInt64 = 0
    /// Dropped once the timer ran or was cancelled: the `Scheduled` that can cancel it holds the
    /// timer, and the task usually holds whoever holds that `Scheduled` (a request and its
    /// keep-alive timer), a cycle this cut breaks.
    package var task: (() -> Void)?
    /// Position in the heap; -1 once it ran or was cancelled.
    var index = -1

    package init(deadline: UInt64, task: @escaping () -> Void) {
        self.deadline = deadline
        self.task = task
    }

    func precedes(_ other: LoopTimer) -> Bool {
        deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence
    }
}

/// A binary min-heap of timers by deadline, then by the order they were set. Loop-thread only.
package struct TimerHeap {
    private var items: [LoopTimer] = []

    package init() {}

    var first: LoopTimer? { items.first }
    package var isEmpty: Bool { items.isEmpty }

    package mutating func insert(_ timer: LoopTimer) {
        timer.index = items.count
        items.append(timer)
        siftUp(items.count - 1)
    }

    /// Removes a timer still in the heap (a cancelled one); nothing if it already left.
    package mutating func remove(_ timer: LoopTimer) {
        let index = timer.index
        timer.task = nil
        guard index >= 0, index < items.count, items[index] === timer else { return }
        timer.index = -1
        let last = items.removeLast()
        guard index < items.count else { return }
        items[index] = last
        last.index = index
        siftDown(index)
        siftUp(last.index)
    }

    /// Takes the earliest timer out and hands over its task.
    package mutating func popFirst() -> (() -> Void)? {
        guard let top = items.first else { return nil }
        let task = top.task
        remove(top)
        return task
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < items.count else { return }
            var smallest = left
            if left + 1 < items.count, items[left + 1].precedes(items[left]) { smallest = left + 1 }
            guard items[smallest].precedes(items[parent]) else { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        items.swapAt(a, b)
        items[a].index = a
        items[b].index = b
    }
}
