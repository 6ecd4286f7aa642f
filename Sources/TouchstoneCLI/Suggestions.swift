/// "Did you mean …?" for mistyped option names and values.
enum Suggestions {
    /// The candidate closest to `given`: a prefix either way, else at most 2 edits (Levenshtein) away; `nil` when none
    /// is close. Ties go to the earlier candidate.
    static func closest(to given: String, among candidates: [String]) -> String? {
        guard !given.isEmpty else { return nil }
        if let prefixed = candidates.first(where: { $0.hasPrefix(given) || given.hasPrefix($0) }) {
            // `--gpu` → `--gpus`, `--gpus-per-task` → `--gpus`; but not the bare `--`.
            if prefixed.count > 2 && given.count > 2 { return prefixed }
        }
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(given, candidate)
            if distance <= 2, distance < (best?.1 ?? .max) { best = (candidate, distance) }
        }
        return best?.0
    }

    /// Levenshtein distance between two strings, by characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// `; did you mean X?` or nothing.
    static func hint(for given: String, among candidates: [String]) -> String {
        closest(to: given, among: candidates).map { "; did you mean \($0)?" } ?? ""
    }
}
