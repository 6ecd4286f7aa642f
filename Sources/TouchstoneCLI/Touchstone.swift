import ArgumentParser
import Domain

/// The `touchstone` command: the backend (`serve`) and every operator command.
public struct Touchstone: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "touchstone",
        abstract: "Dispatch containerised training tasks to in-house GPU servers, from one event-sourced backend.",
        version: TouchstoneVersion.current,
        subcommands: [
            Serve.self, ServerCommand.self, TaskCommand.self, Events.self, Replay.self, Debug.self, Audit.self,
            ConfigCommand.self, GC.self, KeysCommand.self,
        ]
    )

    public init() {}

    /// Parses the process's arguments and runs the chosen command; exits the process on error.
    public static func runFromCommandLine() async {
        await main()
    }
}
