extension Duration {
    /// The duration in whole milliseconds, truncated toward zero (Int64; negative for a negative duration).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
