import PrismSupport
/// The sliding-window counter behind `prism.shared_state.v1` window_take: a window of W
/// milliseconds kept as 60 slots of W/60 ms. A take counts every slot that overlaps the last W ms,
/// the oldest one whole, so a window never admits more than its limit in any interval of length
/// W (a fixed window lets up to 2x through across an edge). The Redis backend runs the same
/// arithmetic as a Lua script (`SlidingWindow.takeScript`), so both backends agree.
package struct WindowCounter {
    package static let slotCount: UInt64 = 60
    /// The largest cost, limit or adjustment accepted: 2^53, exact in Lua's doubles too.
    package static let largestAmount: Int64 = 1 << 53

    /// Slot index → units counted in it, oldest first.
    private(set) var slots: [(index: UInt64, count: Int64)] = []

    package init() {}

    package static func slotMilliseconds(_ window: UInt64) -> UInt64 { max(1, window / slotCount) }

    package struct Evaluation {
        package var fits: Bool
        package var used: Int64
        package var retryAfterMilliseconds: UInt64
        package var resetMilliseconds: UInt64
        package var slot: UInt64
    }

    /// Drops slots that left the window and tells whether `cost` fits under `limit` (≤ 0: no limit).
    package mutating func evaluate(now: UInt64, window: UInt64, limit: Int64, cost: Int64) -> Evaluation {
        let slotLength = WindowCounter.slotMilliseconds(window)
        let current = now / slotLength
        slots.removeAll { $0.index + WindowCounter.slotCount < current }
        let used = slots.reduce(0) { WindowCounter.sum($0, $1.count) }
        let fits = limit <= 0 || WindowCounter.sum(used, cost) <= limit
        var retry: UInt64 = 0
        if !fits {
            retry = window // a cost above the limit never fits
            if cost <= limit {
                var freed: Int64 = 0
                for slot in slots {
                    freed = WindowCounter.sum(freed, slot.count)
                    if WindowCounter.sum(used - freed, cost) <= limit {
                        retry = (slot.index + WindowCounter.slotCount + 1) * slotLength - now
                        break
                    }
                }
            }
        }
        return Evaluation(fits: fits, used: used, retryAfterMilliseconds: retry,
                          resetMilliseconds: resetMilliseconds(now: now, slotLength: slotLength), slot: current)
    }

    /// Counts `cost` in the current slot (after `evaluate` said it fits).
    package mutating func commit(_ evaluation: inout Evaluation, now: UInt64, window: UInt64, cost: Int64) {
        guard cost > 0 else { return }
        if let last = slots.indices.last, slots[last].index == evaluation.slot {
            slots[last].count = WindowCounter.sum(slots[last].count, cost)
        } else {
            slots.append((evaluation.slot, cost))
        }
        evaluation.used = WindowCounter.sum(evaluation.used, cost)
        evaluation.resetMilliseconds = resetMilliseconds(now: now, slotLength: WindowCounter.slotMilliseconds(window))
    }

    /// Corrects the count of `slot` by `delta` if the slot is still held (never below zero).
    package mutating func adjust(slot: UInt64, delta: Int64) {
        guard let position = slots.firstIndex(where: { $0.index == slot }) else { return }
        slots[position].count = max(0, WindowCounter.sum(slots[position].count, delta))
    }

    /// Addition that saturates instead of trapping (counts only grow by bounded amounts, but a
    /// long-lived slot must never bring the process down).
    package static func sum(_ left: Int64, _ right: Int64) -> Int64 {
        let (result, overflow) = left.addingReportingOverflow(right)
        return overflow ? (right > 0 ? Int64.max : Int64.min) : result
    }

    /// True when nothing counted is left in the window at `now`.
    package func isEmpty(now: UInt64, window: UInt64) -> Bool {
        let current = now / WindowCounter.slotMilliseconds(window)
        return slots.allSatisfy { $0.index + WindowCounter.slotCount < current || $0.count == 0 }
    }

    private func resetMilliseconds(now: UInt64, slotLength: UInt64) -> UInt64 {
        guard let newest = slots.last(where: { $0.count > 0 }) else { return 0 }
        return (newest.index + WindowCounter.slotCount + 1) * slotLength - now
    }
}

package enum SlidingWindow {
    package static let takeScriptDigest = digestHex(takeScript, sha1: true)
    package static let adjustScriptDigest = digestHex(adjustScript, sha1: true)

    /// window_take on Redis, atomically: KEYS are the windows' hashes (field = slot index, value =
    /// units); ARGV holds window_ms, limit, cost per key. Uses the server's clock, so replicas with
    /// skewed clocks still share one window. Returns {all_granted, then per key: fits, used,
    /// retry_after_ms, reset_ms, slot}.
    package static let takeScript = """
    local time = redis.call('TIME')
    local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    local all = 1
    local states = {}
    for i = 1, #KEYS do
      local window = tonumber(ARGV[3 * i - 2])
      local limit = tonumber(ARGV[3 * i - 1])
      local cost = tonumber(ARGV[3 * i])
      local length = math.max(1, math.floor(window / 60))
      local current = math.floor(now / length)
      local fields = redis.call('HGETALL', KEYS[i])
      local slots = {}
      local stale = {}
      local used = 0
      for j = 1, #fields, 2 do
        local index = tonumber(fields[j])
        local count = tonumber(fields[j + 1])
        if index + 60 < current then
          stale[#stale + 1] = fields[j]
        else
          slots[#slots + 1] = {index, count}
          used = used + count
        end
      end
      if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
      table.sort(slots, function(a, b) return a[1] < b[1] end)
      local fits = (limit <= 0) or (used + cost <= limit)
      if not fits then all = 0 end
      states[i] = {length, current, slots, used, limit, cost, fits, window}
    end
    local result = {all}
    for i = 1, #KEYS do
      local length, current, slots, used, limit, cost, fits, window = unpack(states[i])
      local retry = 0
      if all == 1 and cost > 0 then
        -- A new slot extends the key's life to one window past it (older slots only shorten it).
        if redis.call('HINCRBY', KEYS[i], current, cost) == cost then
          redis.call('PEXPIRE', KEYS[i], 61 * length + 1000)
        end
        used = used + cost
        slots[#slots + 1] = {current, cost}
      elseif not fits then
        retry = window
        if cost <= limit then
          local freed = 0
          for _, slot in ipairs(slots) do
            freed = freed + slot[2]
            if used - freed + cost <= limit then
              retry = (slot[1] + 61) * length - now
              break
            end
          end
        end
      end
      local reset = 0
      for k = #slots, 1, -1 do
        if slots[k][2] > 0 then
          reset = (slots[k][1] + 61) * length - now
          break
        end
      end
      result[#result + 1] = fits and 1 or 0
      result[#result + 1] = used
      result[#result + 1] = retry
      result[#result + 1] = reset
      result[#result + 1] = current
    end
    return result
    """

    /// window_adjust on Redis: KEYS[1] the window, ARGV slot and delta; only a slot still held.
    package static let adjustScript = """
    if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
      local value = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
      if value < 0 then redis.call('HSET', KEYS[1], ARGV[1], 0) end
    end
    return 0
    """
}
