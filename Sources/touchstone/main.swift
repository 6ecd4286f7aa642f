import Logging
import TouchstoneCLI

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
await Touchstone.runFromCommandLine()
