/// The last GPU inventory reading, re-read only when the task state moved since (a task started or ended, so a GPU
/// may have been taken or freed) or when it is older than ``maximumAge``: an idle agent runs `nvidia-smi` at most once
/// a minute (issue 10, part 3).
actor GPUReadingCache {
    /// How old a reading may be before it is taken again, although no task changed.
    static let maximumAge = Duration.seconds(60)

    private var last: (reading: GPUInventory.Reading, taskState: String, at: ContinuousClock.Instant)?

    /// The cached reading when it was taken at this task state less than ``maximumAge`` ago, else a new one.
    ///
    /// - Parameters:
    ///   - taskState: The agent's task-state version now (``AgentTasks/stateVersion``).
    ///   - read: Takes a reading (runs the inventory command).
    func reading(taskState: String, read: () async -> GPUInventory.Reading) async -> GPUInventory.Reading {
        let now = ContinuousClock.now
        if let last, last.taskState == taskState, now - last.at < Self.maximumAge { return last.reading }
        let reading = await read()
        last = (reading, taskState, now)
        return reading
    }
}
