import ArgumentParser

/// `touchstone task …`: submit tasks and follow them.
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task", abstract: "Submit training tasks and follow them.",
        subcommands: [
            TaskSubmit.self, TaskList.self, TaskShow.self, TaskWait.self, TaskCancel.self, TaskLogs.self, TaskArtifacts.self,
            TaskFetch.self,
        ])
}
