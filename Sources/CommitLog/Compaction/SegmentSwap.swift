import DiskIO
import Logging

/// Replaces a run of closed segments by the cleaner's output, crash-safely (Kafka
/// `LocalLog.replaceSegments`), and finishes or rolls back a replacement a crash interrupted
/// (`recover`, called by `LogLoader` before it lists segments: step 1 of `LogLoader`'s doc comment,
/// Kafka `LogLoader.removeTempFilesAndCollectSwapFiles`).
///
/// The new segment is named after the first replaced segment's base offset N and is sealed so it
/// ends exactly where the replaced run ended (`CompactionRound`), so its offset range
/// [N, end) names precisely the segments it replaces. The steps, and what a crash after each leaves:
///
/// 1. Write `N.log.cleaned`, `N.index.cleaned`, `N.timeindex.cleaned` and fdatasync them.
///    Crash here (`SwapStep.cleanedWritten` or during the writes): `recover` deletes every
///    `.cleaned` file; the old segments are untouched — rolled back.
/// 2. Rename the two index files `.cleaned` → `.swap`, then the `.log` (the commit point), then
///    fsync the directory.
///    Crash between (`SwapStep.renamingToSwap`): a `.cleaned` file with base N remains, so `recover`
///    deletes the `.swap` files with base >= N (an unfinished swap) and all `.cleaned` — rolled back.
///    Crash after (`SwapStep.swapped`): `N.log.swap` without `.cleaned` is a finished swap: `recover`
///    deletes the segment files with base in [N, end of `N.log.swap`) and strips `.swap` — rolled
///    forward.
/// 3. Under the partition's `segmentFilesLock`, put the new segment in place of the old ones in
///    the list (readers switch; fetches holding old segments keep their descriptors), then rename
///    every old segment file to `.deleted` (`.log` first), fsync the directory.
///    Crash between renames (`SwapStep.deletingOld`): as after step 2 — `recover` deletes what is left
///    of the old segments, the loader unlinks the `.deleted` files — rolled forward.
/// 4. Strip `.swap`: `N.log.swap` → `N.log` first, then the indexes; fsync the directory.
///    Crash between (`SwapStep.stripping`): an index `.swap` without `N.log.swap` belongs to the
///    already stripped log: `recover` strips it (any leftover index with that name is an old one) —
///    rolled forward.
/// 5. (`SwapStep.stripped`) Done; the cleaner then writes `cleaner-offset-checkpoint`. A crash
///    before that only makes the next round clean the same range again.
enum SegmentSwap {
    /// Where a test may stop a swap as if the process died there (`LogCleaner.crashHookForTesting`).
    enum Step: String, Sendable, CaseIterable {
        case cleanedWritten, renamingToSwap, swapped, deletingOld, stripping, stripped
    }

    /// Thrown when the crash hook stopped a swap: nothing is cleaned up, as after a real crash.
    struct Interrupted: Error, CustomStringConvertible {
        var step: Step
        var description: String { "swap interrupted at \(step.rawValue) (test crash hook)" }
    }

    typealias CrashHook = @Sendable (Step) -> Bool

    static func check(_ hook: CrashHook?, _ step: Step) throws(Interrupted) {
        if let hook, hook(step) { throw Interrupted(step: step) }
    }

    /// Step 2: `.cleaned` → `.swap`, indexes first, the `.log` last.
    static func renameCleanedToSwap(directory: String, baseOffset: Int64, io: any FileIO, hook: CrashHook?) throws {
        do {
            for name in [SegmentFileName.offsetIndex(baseOffset), SegmentFileName.timeIndex(baseOffset)] {
                try rename(directory, name, SegmentFileName.cleanedSuffix, SegmentFileName.swapSuffix, io: io)
            }
        } catch { throw CommitLogError.storage(error, "renaming cleaned indexes of \(baseOffset) to .swap") }
        try check(hook, .renamingToSwap)
        do {
            try rename(directory, SegmentFileName.log(baseOffset), SegmentFileName.cleanedSuffix, SegmentFileName.swapSuffix, io: io)
            try io.syncDirectory(directory)
        } catch { throw CommitLogError.storage(error, "renaming \(baseOffset).log.cleaned to .swap") }
    }

    /// Step 4: strip `.swap`, the `.log` first.
    static func stripSwap(directory: String, baseOffset: Int64, io: any FileIO, hook: CrashHook?) throws {
        do {
            try rename(directory, SegmentFileName.log(baseOffset), SegmentFileName.swapSuffix, "", io: io)
        } catch { throw CommitLogError.storage(error, "stripping .swap of \(baseOffset).log") }
        try check(hook, .stripping)
        do {
            for name in [SegmentFileName.offsetIndex(baseOffset), SegmentFileName.timeIndex(baseOffset)] {
                try rename(directory, name, SegmentFileName.swapSuffix, "", io: io)
            }
            try io.syncDirectory(directory)
        } catch { throw CommitLogError.storage(error, "stripping .swap of \(baseOffset) indexes") }
    }

    private static func rename(_ directory: String, _ name: String, _ from: String, _ to: String, io: any FileIO) throws(DiskError) {
        try io.rename(SegmentFileName.join(directory, name + from), to: SegmentFileName.join(directory, name + to))
    }

    /// Deletes every cleaner file of an abandoned swap of base `baseOffset` (`.cleaned` and `.swap`).
    static func discard(directory: String, baseOffset: Int64, io: any FileIO) {
        for name in SegmentFileName.segmentFiles(baseOffset) {
            for suffix in [SegmentFileName.cleanedSuffix, SegmentFileName.swapSuffix] {
                let path = SegmentFileName.join(directory, name + suffix)
                if io.fileExists(path) { try? io.unlink(path) }
            }
        }
    }

    // MARK: Recovery

    /// Step 1 of `LogLoader` for `.cleaned` / `.swap` (stray `.deleted` files are left to `LogLoader`):
    /// swap files with base >= the smallest `.cleaned` base are unfinished and deleted; all `.cleaned`
    /// are deleted; each remaining `N.log.swap` is a finished swap — the segment files with base in
    /// [N, its end offset) are deleted and `.swap` is stripped; a remaining index `.swap` is stripped.
    static func recover(directory: String, io: any FileIO, logger: Logger) throws(DiskError) {
        let names = try io.listDirectory(directory)
        var cleaned: [(name: String, base: Int64)] = []
        var swaps: [(name: String, base: Int64, segmentFile: String)] = []
        for name in names {
            if let found = SegmentFileName.transient(name, suffix: SegmentFileName.cleanedSuffix) {
                cleaned.append((name, found.baseOffset))
            } else if let found = SegmentFileName.transient(name, suffix: SegmentFileName.swapSuffix) {
                swaps.append((name, found.baseOffset, found.segmentFile))
            }
        }
        guard !cleaned.isEmpty || !swaps.isEmpty else { return }
        if let minCleaned = cleaned.map(\.base).min() {
            for swap in swaps where swap.base >= minCleaned {
                try io.unlink(SegmentFileName.join(directory, swap.name))
                logger.warning("rolled back an unfinished segment swap", metadata: ["file": "\(swap.name)"])
            }
            swaps.removeAll { $0.base >= minCleaned }
        }
        for file in cleaned {
            try io.unlink(SegmentFileName.join(directory, file.name))
        }
        // Finished swaps: the `.log.swap` defines the replaced range.
        let segmentBases = Set(names.compactMap { name -> Int64? in
            guard !name.hasSuffix(SegmentFileName.swapSuffix), !name.hasSuffix(SegmentFileName.cleanedSuffix) else { return nil }
            return SegmentFileName.baseOffset(of: name, suffix: SegmentFileName.logSuffix)
                ?? SegmentFileName.baseOffset(of: name, suffix: SegmentFileName.offsetIndexSuffix)
                ?? SegmentFileName.baseOffset(of: name, suffix: SegmentFileName.timeIndexSuffix)
        })
        for swap in swaps.sorted(by: { $0.base < $1.base }) where swap.segmentFile == SegmentFileName.log(swap.base) {
            let swapPath = SegmentFileName.join(directory, swap.name)
            let fd = try io.open(swapPath, mode: .readOnly)
            let scan: SegmentRecovery
            do {
                scan = try SegmentRecovery.scan(
                    io: io, fd: fd, path: swapPath, baseOffset: swap.base, offsetLimit: nil, indexIntervalBytes: 4096)
            } catch {
                io.close(fd)
                throw error
            }
            io.close(fd)
            let end = scan.nextOffset
            for base in segmentBases.sorted() where base >= swap.base && base < end {
                for name in SegmentFileName.segmentFiles(base) {
                    let path = SegmentFileName.join(directory, name)
                    if io.fileExists(path) { try io.unlink(path) }
                }
            }
            logger.warning(
                "completing an interrupted segment swap", metadata: ["baseOffset": "\(swap.base)", "replacedUpTo": "\(end)"])
        }
        for swap in swaps {
            try io.rename(SegmentFileName.join(directory, swap.name), to: SegmentFileName.join(directory, swap.segmentFile))
        }
        try io.syncDirectory(directory)
    }
}
