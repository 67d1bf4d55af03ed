import PrismWire
import XCTest

final class DurationTextTests: XCTestCase {
    func testParsesUnitsAndRefusesWhatCannotBeADuration() {
        XCTAssertEqual(DurationText.milliseconds("500ms"), 500)
        XCTAssertEqual(DurationText.milliseconds("1.5s"), 1500)
        XCTAssertEqual(DurationText.milliseconds(" 5m "), 300_000)
        XCTAssertEqual(DurationText.milliseconds("2h"), 7_200_000)
        XCTAssertEqual(DurationText.milliseconds("30"), 30_000)
        for text in ["1e300", "inf", "nan", "-1s", "99999999999999999999h", "soon", ""] {
            XCTAssertNil(DurationText.milliseconds(text), text)
        }
    }
}
