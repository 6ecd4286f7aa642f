import Foundation

/// An AWS access key, its secret and an optional session token, as SigV4 signing needs them.
///
/// The secret and the token never appear in `description`, `debugDescription`, string interpolation or `dump`: each
/// prints as `<redacted>`, and the access key ID shows only its last four characters.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The access key ID (`AKIA…`, or `ASIA…` for temporary credentials).
    public var accessKeyID: String
    /// The secret access key. Secret: never log it.
    public var secretAccessKey: String
    /// The session token of temporary credentials (`X-Amz-Security-Token`), if any. Secret: never log it.
    public var sessionToken: String?

    /// Creates credentials.
    ///
    /// - Parameters:
    ///   - accessKeyID: The access key ID.
    ///   - secretAccessKey: The secret access key.
    ///   - sessionToken: The session token of temporary credentials, if any.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// `AWSCredentials(accessKeyID: …WXYZ, secretAccessKey: <redacted>, sessionToken: <redacted>|none)`.
    public var description: String {
        "AWSCredentials(accessKeyID: …\(accessKeyID.suffix(4)), secretAccessKey: <redacted>, sessionToken: "
            + (sessionToken == nil ? "none)" : "<redacted>)")
    }

    /// The same as ``description``: secrets stay redacted.
    public var debugDescription: String { description }

    /// A mirror with the secrets redacted, so that `dump` and test failure messages do not reveal them.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "accessKeyID": "…\(accessKeyID.suffix(4))", "secretAccessKey": "<redacted>",
                "sessionToken": sessionToken == nil ? "none" : "<redacted>",
            ])
    }
}

extension AWSCredentials {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, optionally, `AWS_SESSION_TOKEN`.
    ///
    /// - Parameter environment: The process environment (tests pass their own).
    /// - Returns: The credentials, or `nil` when the key ID or the secret is missing or empty.
    public static func fromEnvironment(_ environment: [String: String]) -> AWSCredentials? {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { return nil }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// Reads one profile of an AWS shared credentials file (INI: `[profile]` sections of `key = value` lines,
    /// `#` and `;` comments), as the AWS CLI's "Configuration and credential file settings" describes it.
    ///
    /// - Parameters:
    ///   - contents: The file's text.
    ///   - profile: The section to read, for example `default`.
    ///   - path: The file's path, for error messages only.
    /// - Returns: The profile's `aws_access_key_id`, `aws_secret_access_key` and `aws_session_token`.
    /// - Throws: ``QueueError`` `.missingCredentials` when the profile or one of its two required keys is missing.
    public static func parseSharedCredentials(_ contents: String, profile: String, path: String) throws(QueueError)
        -> AWSCredentials
    {
        var section: String?
        var values: [String: String] = [:]
        for rawLine in contents.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                continue
            }
            guard section == profile, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            values[key] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        guard let id = values["aws_access_key_id"], !id.isEmpty,
            let secret = values["aws_secret_access_key"], !secret.isEmpty
        else {
            throw QueueError(
                .missingCredentials,
                "profile \(profile) of \(path) has no aws_access_key_id and aws_secret_access_key")
        }
        let token = values["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// Finds credentials the way the AWS SDKs start: the environment first, then the shared credentials file.
    ///
    /// The file is `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; the profile is `AWS_PROFILE`, else
    /// `default`. Instance roles and SSO are not supported.
    ///
    /// - Parameter environment: The process environment (tests pass their own).
    /// - Returns: The credentials found.
    /// - Throws: ``QueueError`` `.missingCredentials` when neither source has any, naming both.
    public static func resolve(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(QueueError) -> AWSCredentials {
        if let credentials = fromEnvironment(environment) { return credentials }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? home + "/.aws/credentials"
        let profile = environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw QueueError(
                .missingCredentials,
                "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set and \(path) "
                    + "cannot be read")
        }
        return try parseSharedCredentials(contents, profile: profile, path: path)
    }
}
