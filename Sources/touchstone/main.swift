import TouchstoneCLI

// Logging is bootstrapped by the command that runs: `serve` with its --log-format and --log-level; the others keep
// swift-log's default (standard error, info).
await Touchstone.runFromCommandLine()
