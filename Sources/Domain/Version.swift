/// Touchstone's version: what `touchstone --version` and `touchstone-agent --version` print, and the
/// `agentVersion` an agent reports in its `hello`.
public enum TouchstoneVersion {
    /// Semantic version of this build, e.g. `0.1.0`.
    public static let current = "0.1.0"
}
