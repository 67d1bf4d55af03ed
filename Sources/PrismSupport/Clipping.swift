extension StringProtocol {
    /// At most `limit` characters of this text, as a String. Text of at most `limit` UTF-8 bytes
    /// (nearly every value a request carries) is returned whole without walking its characters:
    /// `prefix(_:)` alone segments graphemes, several hundred instructions for a short value.
    package func clipped(toCharacters limit: Int) -> String {
        utf8.count <= limit ? String(self) : String(prefix(limit))
    }
}
