import InputLimits

extension DomainEventCodec {
    /// The limits every event payload read from the log must fit before it is decoded (issue 12): 16 MiB, far above
    /// the largest payload this build writes (a `task.submitted` carries at most one 1 MiB start request's worth of
    /// spec; a `task.finished` at most a few 64 KiB inline outputs), and depth 64 (payloads nest at most 5 deep).
    /// Above these, a payload is reported as corrupt with the limit named, instead of being decoded.
    public static let payloadLimits = JSONLimits(maxBytes: 16 << 20, maxDepth: 64)
}
