using Mis.Enforcer.Events;
using Mis.Enforcer.Kernel;
using Mis.Enforcer.Policy;
using Mis.Enforcer.Run;

namespace Mis.Enforcer.Tests;

public sealed class RunRecorderTests : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"mis-recorder-{Guid.NewGuid():N}.jsonl");

    public void Dispose() => File.Delete(_file);

    private List<EnforcementEvent> Lines() => File.ReadAllLines(_file).Select(EnforcementEvent.FromJsonLine).ToList();

    [Fact]
    public void Ring_buffer_drops_are_reported_once_each_as_deltas()
    {
        using (var log = new EventLog(_file))
        {
            var recorder = new RunRecorder(7, log, new WorkloadRunner.KernelClock());
            recorder.ReportDrops(10, null);
            recorder.ReportDrops(10, null);
            recorder.ReportDrops(15, null);
        }
        var drops = Lines();
        Assert.Equal([10UL, 5UL], drops.Select(d => d.Dropped!.Value));
        Assert.All(drops, d => Assert.Equal("ringbuf_drop", d.Event));
    }

    [Fact]
    public void Kernel_events_become_flat_schema_lines_and_feed_the_summary()
    {
        using (var log = new EventLog(_file))
        {
            var recorder = new RunRecorder(7, log, new WorkloadRunner.KernelClock());
            recorder.Record(new KernelEvent(KernelEventType.Violation, 1, 7, 100, 101, "cat", ViolationOp.FileRead, "/etc/shadow",
                Verdict.Deny, 4, 5, 3, (ulong)MisDecidedBy.Lsm, false));
            recorder.Record(new KernelEvent(KernelEventType.Defcon, 2, 7, 100, 101, "cat", null, "", Verdict.Allow, 4, 5, 3, 0, false));
            recorder.Record(new KernelEvent(KernelEventType.Syscall, 3, 7, 100, 101, "cat", null, "", Verdict.Allow, 4, 4, 3, 257, true));
            var result = recorder.Finish(new Confinement.WorkloadExit(2, null), null, 0, TimeSpan.FromSeconds(1));
            Assert.Equal([(5, 4, 3UL)], result.Transitions);
            Assert.Equal(1, result.ViolationsByOperation["file_read"]);
        }
        var lines = Lines();
        Assert.Equal(["violation", "defcon_transition", "syscall", "slowdown", "exit"], lines.Select(l => l.Event));
        Assert.Equal(("file_read", "/etc/shadow", "deny", "cat"), (lines[0].Operation, lines[0].Target, lines[0].Decision, lines[0].Comm));
        Assert.Equal("lsm", lines[0].DecidedBy);
        Assert.Null(lines[1].DecidedBy); // a state event names no deny point
        Assert.Equal(5, lines[1].PrevDefcon);
        Assert.Equal(257, lines[2].SyscallNr);
        Assert.Equal(2, lines[4].ExitStatus);
        Assert.Null(lines[0].PrevDefcon); // optional fields appear only where they apply
        Assert.DoesNotContain("prev_defcon", File.ReadAllLines(_file)[0]);
    }

    [Fact]
    public void Without_a_kernel_reading_the_closing_lines_carry_the_last_level_the_events_told_of()
    {
        using (var log = new EventLog(_file))
        {
            var recorder = new RunRecorder(7, log, new WorkloadRunner.KernelClock());
            recorder.Record(new KernelEvent(KernelEventType.Defcon, 1, 7, 100, 101, "cat", null, "", Verdict.Allow, 3, 4, 6, 0, false));
            recorder.ReportDrops(2, null);
            var result = recorder.Finish(new Confinement.WorkloadExit(0, null), null, 2, TimeSpan.FromSeconds(1));
            Assert.Equal((3, 6UL), (result.Defcon, result.Violations)); // not DEFCON 5 with nothing counted
        }
        var lines = Lines();
        Assert.Equal(["defcon_transition", "ringbuf_drop", "slowdown", "exit"], lines.Select(l => l.Event));
        Assert.All(lines, l => Assert.Equal((3, 6UL), (l.Defcon, l.Violations)));
    }
}
