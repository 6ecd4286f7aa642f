import ArgumentParser

/// `touchstone server …`: attach servers and see their capacity.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Attach in-house servers and see their capacity.",
        subcommands: [
            ServerAttach.self, ServerList.self, ServerShow.self, ServerDrain.self, ServerDetach.self,
            ServerSetCapacity.self, ServerRekey.self,
        ])
}
