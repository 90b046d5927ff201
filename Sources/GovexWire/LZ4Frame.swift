import CLZ4

/// LZ4 frame format (the `lz4` command's format), so `lz4 -d` opens a batch body.
public enum LZ4Frame {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case compressionFailed(String)
        case malformed(String)
        case sizeMismatch(expected: Int, actual: Int)

        public var description: String {
            switch self {
            case .compressionFailed(let reason): return "LZ4 compression failed: \(reason)"
            case .malformed(let reason): return "body is not a valid LZ4 frame: \(reason)"
            case let .sizeMismatch(expected, actual): return "LZ4 frame holds \(actual) bytes, the header declares \(expected)"
            }
        }
    }

    /// Compresses `input` as one frame: 4 MiB linked blocks, content size recorded,
    /// fast level. No content checksum: the batch's body digest already covers every
    /// byte, and the checksum cost a fifth of the compression time.
    public static func compress(_ input: UnsafeRawBufferPointer) throws(Failure) -> [UInt8] {
        let bound = compressBound(input.count)
        var failure: Failure? = nil
        let output = [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            do throws(Failure) {
                count = try compress(input, into: UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return output
    }

    static func preferences(contentSize: Int) -> LZ4F_preferences_t {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockLinked
        preferences.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        preferences.frameInfo.contentSize = UInt64(contentSize)
        preferences.compressionLevel = 0
        return preferences
    }

    /// The most bytes `compress(_:into:)` can write for `inputSize` bytes.
    public static func compressBound(_ inputSize: Int) -> Int {
        var preferences = preferences(contentSize: inputSize)
        return LZ4F_compressFrameBound(inputSize, &preferences)
    }

    /// Compresses into memory the caller provides (at least `compressBound` bytes), returning the frame's length.
    public static func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(Failure) -> Int {
        var preferences = preferences(contentSize: input.count)
        guard output.count >= LZ4F_compressFrameBound(input.count, &preferences) else {
            throw .compressionFailed("output buffer smaller than the compression bound")
        }
        let written = LZ4F_compressFrame(output.baseAddress, output.count, input.baseAddress, input.count, &preferences)
        if LZ4F_isError(written) != 0 { throw .compressionFailed(String(cString: LZ4F_getErrorName(written))) }
        return written
    }

    /// Decompresses one frame that must hold exactly `expectedSize` bytes. The
    /// output is allocated from `expectedSize` (bounded by the caller's limits),
    /// never from a size read out of the frame.
    public static func decompress(_ input: UnsafeRawBufferPointer, expectedSize: Int) throws(Failure) -> [UInt8] {
        var context: OpaquePointer? = nil
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            throw .malformed("could not create an LZ4 decompression context")
        }
        defer { LZ4F_freeDecompressionContext(context) }

        var failure: Failure? = nil
        let output = [UInt8](unsafeUninitializedCapacity: expectedSize) { buffer, count in
            count = 0
            var consumed = 0
            var produced = 0
            while true {
                var sourceSize = input.count - consumed
                // One spare byte of room lets an overlong frame show itself instead of stopping exactly at the limit.
                var destinationSize = expectedSize - produced
                var spare: UInt8 = 0
                let hint: Int = withUnsafeMutablePointer(to: &spare) { sparePointer in
                    let destination = destinationSize > 0 ? UnsafeMutableRawPointer(buffer.baseAddress! + produced) : UnsafeMutableRawPointer(sparePointer)
                    if destinationSize == 0 { destinationSize = 1 }
                    return LZ4F_decompress(context, destination, &destinationSize, input.baseAddress.map { $0 + consumed }, &sourceSize, nil)
                }
                if LZ4F_isError(hint) != 0 {
                    failure = .malformed(String(cString: LZ4F_getErrorName(hint)))
                    return
                }
                consumed += sourceSize
                if produced == expectedSize && destinationSize > 0 {
                    failure = .sizeMismatch(expected: expectedSize, actual: produced + destinationSize)
                    return
                }
                produced += destinationSize
                if hint == 0 { break }
                if sourceSize == 0 && destinationSize == 0 {
                    failure = .malformed("the frame ends early (truncated body)")
                    return
                }
            }
            guard consumed == input.count else {
                failure = .malformed("\(input.count - consumed) bytes follow the end of the frame")
                return
            }
            guard produced == expectedSize else {
                failure = .sizeMismatch(expected: expectedSize, actual: produced)
                return
            }
            count = produced
        }
        if let failure { throw failure }
        return output
    }
}
