import Foundation

/// One row of `tools/bench`: a figure, the baseline measured in the same run, their ratio and the goal.
///
/// Encoded as one JSON object with the keys `metric`, `value`, `unit`, `baseline`, `baseline_value`, `ratio`, `goal`,
/// `met` (issue 11's JSON shape); `baseline`, `baseline_value`, `ratio` and `met` are `null` when there is no baseline,
/// when a peer could not start (then `note` says why), or when the goal cannot be judged.
struct BenchRow: Codable, Sendable, Equatable {
    /// The row number of issue 11's table (1–12), for ordering and cross-reference.
    var row: Int
    /// What was measured, e.g. `single-event durable appends/s`.
    var metric: String
    /// The figure.
    var value: Double?
    /// Its unit, e.g. `events/s`, `ms`, `MB`, `%core`.
    var unit: String
    /// What it is compared with, e.g. `raw SQLite single-row commits/s (python sqlite3)`.
    var baseline: String?
    /// The baseline's figure, in the same unit as ``value`` where the ratio is meaningful.
    var baselineValue: Double?
    /// ``value`` / ``baselineValue``.
    var ratio: Double?
    /// The goal in words, e.g. `>= 0.8x` or `<= 20 ms`.
    var goal: String
    /// Whether the goal was met; `nil` when it cannot be judged (a peer did not start, a smoke run).
    var met: Bool?
    /// Why a figure or a baseline is missing, or what bounds it.
    var note: String?

    enum CodingKeys: String, CodingKey {
        case row, metric, value, unit, baseline
        case baselineValue = "baseline_value"
        case ratio, goal, met, note
    }

    init(
        row: Int, metric: String, value: Double?, unit: String, baseline: String? = nil, baselineValue: Double? = nil,
        goal: String, met: Bool?, note: String? = nil
    ) {
        self.row = row
        self.metric = metric
        self.value = value
        self.unit = unit
        self.baseline = baseline
        self.baselineValue = baselineValue
        if let value, let baselineValue, baselineValue != 0 { ratio = value / baselineValue } else { ratio = nil }
        self.goal = goal
        self.met = met
        self.note = note
    }

    /// Encodes every key, `null` when empty (scripts read a fixed shape).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(row, forKey: .row)
        try container.encode(metric, forKey: .metric)
        try container.encode(value, forKey: .value)
        try container.encode(unit, forKey: .unit)
        try container.encode(baseline, forKey: .baseline)
        try container.encode(baselineValue, forKey: .baselineValue)
        try container.encode(ratio, forKey: .ratio)
        try container.encode(goal, forKey: .goal)
        try container.encode(met, forKey: .met)
        try container.encode(note, forKey: .note)
    }
}
