import ArgumentParser
import DiskIO
import SegmentTool

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and verify segment files (.log, .index, .timeindex) or partition directories.")

    @Argument(help: "Segment files or partition directories.")
    var paths: [String]

    @Flag(help: "Check every CRC, index and time-index entry; exit non-zero at the first problem.")
    var verify = false

    @Flag(help: "Print every record, not just batch headers.")
    var deep = false

    @Flag(name: .customLong("print-data"), help: "With --deep, print keys and values.")
    var printData = false

    @Flag(name: .customLong("index-sanity"), help: "Only check that index files are well formed.")
    var indexSanity = false

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() throws {
        var options = DumpOptions(paths: paths)
        options.verify = verify
        options.deep = deep || printData
        options.printData = printData
        options.indexSanity = indexSanity
        options.json = json
        let status = runDump(options, io: PosixFileIO()) { print($0) }
        if status != 0 { throw ExitCode(status) }
    }
}
