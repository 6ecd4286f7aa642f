import Crypto
import Foundation

/// Signs HTTP requests with AWS Signature Version 4 (HMAC-SHA256), as the AWS General Reference's "Create a signed
/// AWS API request" describes it: canonical request, string to sign, derived signing key, signature.
///
/// The signer is pure: the time comes in as a parameter, so the AWS documentation's example values are known-answer
/// tests (`SigV4SignerTests`).
public struct SigV4Signer: Sendable {
    /// The key that signs.
    public var credentials: AWSCredentials
    /// The region of the credential scope, for example `us-east-1`.
    public var region: String
    /// The service of the credential scope: `sqs` for SQS.
    public var service: String

    /// Creates a signer.
    ///
    /// - Parameters:
    ///   - credentials: The key that signs.
    ///   - region: The region of the credential scope.
    ///   - service: The service of the credential scope (`sqs`).
    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers that sign a request: `X-Amz-Date`, `X-Amz-Security-Token` when there is a session token, and
    /// `Authorization`.
    ///
    /// - Parameters:
    ///   - method: The HTTP method, for example `POST`.
    ///   - path: The URL path, `/` for SQS's JSON protocol; each segment is URI-encoded once.
    ///   - query: The query parameters, not yet encoded.
    ///   - headers: Every header to sign, `Host` included; names are case-insensitive.
    ///   - body: The request body.
    ///   - date: The signing time; SigV4 signatures are valid for 5 minutes around it.
    /// - Returns: The headers to add to the request, in order.
    public func signatureHeaders(
        method: String, path: String, query: [(String, String)] = [], headers: [(String, String)], body: [UInt8],
        date: Date
    ) -> [(String, String)] {
        let timestamp = Self.timestamp(date)
        var signed = headers
        signed.append(("X-Amz-Date", timestamp))
        if let token = credentials.sessionToken { signed.append(("X-Amz-Security-Token", token)) }
        let canonical = canonicalRequest(method: method, path: path, query: query, headers: signed, body: body)
        let scope = "\(timestamp.prefix(8))/\(region)/\(service)/aws4_request"
        let stringToSign = Self.stringToSign(timestamp: timestamp, scope: scope, canonicalRequest: canonical.text)
        let key = signingKey(date: String(timestamp.prefix(8)))
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        var added = [("X-Amz-Date", timestamp)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        added.append(
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
                    + "SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
            ))
        return added
    }

    /// The canonical request (task 1 of the signing process) and its `SignedHeaders` list.
    func canonicalRequest(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], body: [UInt8]
    ) -> (text: String, signedHeaders: String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            merged[name.lowercased(), default: []].append(collapsed)
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let segments: [String] = path.split(separator: "/", omittingEmptySubsequences: false).map { Self.uriEncode($0) }
        let canonicalPath = path.isEmpty ? "/" : segments.joined(separator: "/")
        let encodedQuery: [(name: String, value: String)] = query.map { pair in
            (name: Self.uriEncode(pair.0), value: Self.uriEncode(pair.1))
        }
        let sortedQuery = encodedQuery.sorted { lhs, rhs in
            lhs.name != rhs.name ? lhs.name < rhs.name : lhs.value < rhs.value
        }
        let canonicalQuery = sortedQuery.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
        let payloadHash = Self.hex(SHA256.hash(data: body))
        let text = [method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        return (text, signedHeaders)
    }

    /// The string to sign (task 2): algorithm, timestamp, credential scope and the canonical request's SHA-256.
    static func stringToSign(timestamp: String, scope: String, canonicalRequest: String) -> String {
        "AWS4-HMAC-SHA256\n\(timestamp)\n\(scope)\n" + hex(SHA256.hash(data: Array(canonicalRequest.utf8)))
    }

    /// The signing key (task 3): HMAC chain of `AWS4` + secret, date (`YYYYMMDD`), region, service, `aws4_request`.
    func signingKey(date: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key))
        }
        let secret = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        return hmac(hmac(hmac(hmac(secret, date), region), service), "aws4_request")
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
    static func timestamp(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2) + "T" + pad(secondOfDay / 3_600, 2)
            + pad(secondOfDay % 3_600 / 60, 2) + pad(secondOfDay % 60, 2) + "Z"
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    private static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters `A-Z a-z 0-9 - _ . ~`.
    static func uriEncode(_ text: some StringProtocol) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return encoded
    }

    /// A key's bytes in lowercase hexadecimal (for known-answer tests).
    static func hex(key: SymmetricKey) -> String { key.withUnsafeBytes { hex($0) } }

    /// Lowercase hexadecimal.
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: Swift.max(0, width - count)) + self
    }
}
