#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// libFuzzer's entry point for programs that keep their own `main` (linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) private var fuzzBody: ([UInt8]) -> Void = { _ in }

/// Runs a fuzz target. `body` gets one input and traps (precondition) on a broken invariant;
/// thrown errors are the expected answer to hostile bytes and are the body's to swallow.
///
/// `<target> --write-seeds DIR` writes `seeds()` as files `seed-<n>` into DIR (which must exist) and
/// exits: tools/fuzz.sh seeds each target's corpus this way. `<target> --run FILE...` runs the body
/// once per file without libFuzzer's machinery (replaying a crash under the debugger). Anything else
/// goes to libFuzzer (`-max_total_time=`, corpus directories, a crash file to reproduce).
public func runFuzzTarget(seeds: () -> [[UInt8]], _ body: @escaping ([UInt8]) -> Void) -> Never {
    let arguments = CommandLine.arguments
    if arguments.count == 3, arguments[1] == "--write-seeds" {
        for (n, seed) in seeds().enumerated() {
            writeFile("\(arguments[2])/seed-\(n)", seed)
        }
        exit(0)
    }
    if arguments.count >= 3, arguments[1] == "--run" {
        for path in arguments[2...] { body(readFile(path)) }
        exit(0)
    }
    fuzzBody = body
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        fuzzBody(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    })
}

private func writeFile(_ path: String, _ bytes: [UInt8]) {
    guard let file = fopen(path, "wb") else { fatalError("cannot create \(path)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

private func readFile(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count == 0 { break }
        bytes += chunk[0..<count]
    }
    return bytes
}

/// A broken invariant: prints why (release builds drop `precondition` messages) and aborts, which
/// libFuzzer reports as a crash and saves the input.
public func violated(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "FUZZ INVARIANT VIOLATED at \(file):\(line): \(message)\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    abort()
}

/// Checks an invariant of a fuzz target; see `violated`.
public func invariant(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { violated(message(), file: file, line: line) }
}
