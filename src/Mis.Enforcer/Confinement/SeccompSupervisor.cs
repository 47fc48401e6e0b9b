using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Mis.Enforcer.Policy;
using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>Counters of one supervisor (read while it runs; exact once <see cref="SeccompSupervisor.Completion"/> is done).</summary>
public sealed class SupervisorStats
{
    /// <summary>Notified syscalls it was asked to decide.</summary>
    public long Notifications;

    /// <summary>Of those, the ones it allowed.</summary>
    public long Allowed;

    internal long Denied;
    internal long Errors;

    /// <summary>The most supervisor threads that ran at once.</summary>
    internal int PeakThreads = 1;

    /// <summary>Extra threads that ended because they found nothing to do.</summary>
    internal int IdleRetired;
}

/// <summary>
/// Decides a workload's notified syscalls (see native/launcher/filter.c for which) on one
/// dedicated thread: files are opened by the supervisor itself, as the workload, and the fd is
/// injected (SECCOMP_ADDFD_FLAG_SEND), so the decision is on the object the workload receives;
/// execs are decided on the resolved inode and continued; the escape class is refused; signals and
/// other cross-process calls are allowed only toward the workload's own cgroup. Every refusal is a
/// violation reported to the <see cref="IViolationSink"/> before the workload learns of it.
/// A notification that cannot be handled is logged and answered EPERM; the threads end when no
/// process of the workload is left (the listener hangs up) or on <see cref="Dispose"/>.
/// <para>
/// Threads: one to begin with, more (up to <see cref="MaxThreads"/>) when notifications are seen
/// waiting while every thread is busy, so a multi-threaded workload is not serialised behind one
/// decision at a time; an extra thread ends once the threads have not all been busy at once for
/// <see cref="IdleRetireMs"/>.
/// Opens and execs are decided concurrently; a file change (rename, link, unlink, ...) is decided
/// and done alone (<see cref="_names"/>), so no name changes behind a decision being made.
/// </para>
/// </summary>
public sealed unsafe partial class SeccompSupervisor : Session.IFileDecisions
{
    private const uint AuditArchX86_64 = 0xC000003E;

    private readonly SafeFileHandle _listenerHandle;
    private readonly int _listener;
    private readonly int _notificationSize;
    private readonly int _responseSize;
    private readonly int _stopEvent;
    private readonly int _rootFd;
    private readonly int _selfFdDir;
    private readonly ulong _procDev;
    private readonly string _cgroupName;
    private readonly ulong _cgroupId;
    private readonly IFileDecider _decider;
    private readonly IViolationSink _sink;
    private readonly Action<string> _log;
    private readonly ThreadCredentials _credentials;
    private readonly PathResolver _resolver;
    private readonly FifoOpens _fifos;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread _thread;
    private readonly bool _syncWakeUp;
    // Readers: opens and execs (they resolve names); the writer: a change of names or files.
    private readonly ReaderWriterLockSlim _names = new(LockRecursionPolicy.NoRecursion);
    private readonly object _receiving = new();
    private int _threads;
    private int _idleThreads;
    private int _handling;
    // When every thread was last deciding at once (Environment.TickCount64): extra threads are
    // needed only while that happens.
    private long _lastSaturatedMs = Environment.TickCount64;
    private long _received;
    private Exception? _failure;
    private int _disposed;

    /// <summary>Supervisor threads of one workload at most: four match a 4-thread workload; more only add wake-ups.</summary>
    internal const int MaxThreads = 4;

    /// <summary>How long the threads may go without all being busy at once before an extra one ends.</summary>
    internal const int IdleRetireMs = 500;

    // Per thread (a thread serves one supervisor): the path being decided, and whether its
    // fs_struct (umask, root, cwd) is its own.
    [ThreadStatic] private static byte[]? t_path;
    [ThreadStatic] private static bool t_umaskPrivate;
    [ThreadStatic] private static byte[]? t_ownCpus;
    // 1 + the CPU this thread is held to after a hand-off (ReplyFdOnThisCpu); 0: not held.
    [ThreadStatic] private static int t_pinnedTo;
    [ThreadStatic] private static int t_lastTid;

    private static byte[] PathBuffer => t_path ??= new byte[ProcFacts.PathMax];

    private SeccompSupervisor(Workload workload, IFileDecider decider, IViolationSink sink, Action<string>? log)
    {
        _decider = decider;
        _sink = sink;
        _log = log ?? (message => Console.Error.WriteLine(message));
        _cgroupName = workload.CgroupName;
        _cgroupId = workload.CgroupId;
        _credentials = new ThreadCredentials(workload.Credentials);
        (_notificationSize, _responseSize) = SeccompNotify.KernelSizes();
        _notificationSize = Math.Max(_notificationSize, sizeof(SeccompNotify.Notification));
        _responseSize = Math.Max(_responseSize, sizeof(SeccompNotify.Response));

        bool added = false;
        workload.Listener.DangerousAddRef(ref added); // the thread uses the fd until it ends
        _listenerHandle = workload.Listener;
        _listener = (int)workload.Listener.DangerousGetHandle();
        _stopEvent = Libc.EventFd(0, Libc.EFD_CLOEXEC);
        // The workload's root, not ours: in a mount namespace of its own (LaunchSpec.MountNamespace)
        // "/" names other mounts, and a path decided and opened from our root would be the host's
        // file — the wrong decision on the wrong object. It cannot change: chroot, pivot_root,
        // unshare and setns are refused to the workload.
        fixed (byte* root = System.Text.Encoding.ASCII.GetBytes($"/proc/{workload.Pid}/root\0"))
            _rootFd = Libc.Open(root, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        fixed (byte* selfFd = "/proc/self/fd\0"u8)
            _selfFdDir = Libc.Open(selfFd, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        Libc.Stat proc;
        int procRc;
        fixed (byte* p = "/proc\0"u8)
            procRc = Libc.StatPath(p, &proc);
        if (_stopEvent < 0 || _rootFd < 0 || _selfFdDir < 0 || procRc != 0)
        {
            int errno = Libc.LastErrno;
            Cleanup();
            throw new IOException($"cannot set up the seccomp supervisor: {Errno.Describe(errno)}");
        }
        _procDev = proc.Dev;
        _resolver = new PathResolver(_rootFd, _selfFdDir, _procDev, InWorkload);
        _fifos = new FifoOpens(this);
        // The workload blocks until answered: with synchronous wake-ups (Linux 6.6+) the kernel
        // hands the CPU over directly for the notification and for the answer, bringing this
        // thread to the notifying task's CPU. Extra threads and the co-located fd hand-off
        // (ReplyFdOnThisCpu; ADDFD has no synchronous wake-up of its own) count on that; without
        // it one thread serves with ordinary wake-ups.
        _syncWakeUp = SeccompNotify.SetSyncWakeUp(_listener);
        _threads = 1;
        _thread = new Thread(() => Run(primary: true)) { IsBackground = true, Name = $"mis-seccomp-{workload.Pid}" };
    }

    /// <summary>Starts supervising <paramref name="workload"/> (before its <see cref="Workload.Go"/>: until then it waits).</summary>
    internal static SeccompSupervisor Start(Workload workload, IFileDecider decider, IViolationSink sink, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(workload);
        var supervisor = new SeccompSupervisor(workload, decider, sink, log);
        supervisor._thread.Start();
        return supervisor;
    }

    /// <summary>Completes when the supervisor thread has ended (workload gone, disposed, or failed: then faulted).</summary>
    public Task Completion => _completion.Task;

    /// <summary>Whether the supervisor adds threads on this kernel (see <see cref="MaxThreads"/>).</summary>
    internal bool ExtraThreadsAllowed => _syncWakeUp;

    /// <summary>What the supervisor has done so far.</summary>
    public SupervisorStats Stats { get; } = new();

    private void Run(bool primary)
    {
        // A private fs_struct for this thread, so setting the workload's umask before a create
        // does not change the enforcer's.
        t_umaskPrivate = Libc.Syscall(Libc.SYS_unshare, Libc.CLONE_FS, 0, 0) == 0;
        if (!t_umaskPrivate)
            _log($"mis-seccomp: unshare(CLONE_FS) failed ({Errno.Describe(Libc.LastErrno)}); files are created with the enforcer's umask");
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)_notificationSize);
        try
        {
            _credentials.AdoptGroups();
            var fds = stackalloc Libc.PollFd[2];
            while (Volatile.Read(ref _disposed) == 0)
            {
                fds[0] = new Libc.PollFd { Fd = _listener, Events = Libc.POLLIN };
                fds[1] = new Libc.PollFd { Fd = _stopEvent, Events = Libc.POLLIN };
                // RECV behind poll: poll also reports the hang-up when the workload's last process
                // is gone, and lets Dispose wake the thread; the first thread's timeout only runs
                // while a FIFO open waits, to release it if its caller went away.
                int timeout = !primary ? IdleRetireMs : _fifos.Count > 0 ? 250 : -1;
                Interlocked.Increment(ref _idleThreads);
                int ready = Libc.Poll(fds, 2, timeout);
                Interlocked.Decrement(ref _idleThreads);
                if (ready < 0 && Libc.LastErrno == Errno.EINTR)
                    continue;
                if (ready < 0)
                    throw new IOException($"poll on the seccomp listener: {Errno.Describe(Libc.LastErrno)}");
                if (primary)
                    _fifos.Sweep();
                if (fds[1].Revents != 0)
                    break;
                // Every notification wakes every polling thread, so "no work for a while" never
                // comes while a one-thread workload keeps the first thread busy: an extra thread
                // ends when the threads have not all been busy at once for a while.
                if (!primary && Environment.TickCount64 - Volatile.Read(ref _lastSaturatedMs) > IdleRetireMs)
                {
                    Interlocked.Increment(ref Stats.IdleRetired);
                    break;
                }
                if ((fds[0].Revents & Libc.POLLIN) != 0)
                {
                    int rc = TryReceive(buffer);
                    if (rc == Errno.EAGAIN)
                        continue; // another thread took it
                    if (rc == 0)
                    {
                        var notification = MemoryMarshal.Read<SeccompNotify.Notification>(new ReadOnlySpan<byte>(buffer, sizeof(SeccompNotify.Notification)));
                        if (Volatile.Read(ref _disposed) != 0)
                        {
                            Reply(notification.Id, Errno.ENOSYS);
                            break;
                        }
                        if (Interlocked.Increment(ref _handling) >= Volatile.Read(ref _threads))
                            Volatile.Write(ref _lastSaturatedMs, Environment.TickCount64);
                        try
                        {
                            GrowIfBehind();
                            Handle(notification);
                        }
                        finally
                        {
                            Interlocked.Decrement(ref _handling);
                        }
                    }
                    else if (rc != Errno.ENOENT && rc != Errno.EINTR) // ENOENT: the caller died between poll and recv
                        throw new IOException($"SECCOMP_IOCTL_NOTIF_RECV: {Errno.Describe(rc)}");
                }
                else if ((fds[0].Revents & (Libc.POLLHUP | Libc.POLLERR | Libc.POLLNVAL)) != 0)
                {
                    break; // no process of the workload is left
                }
            }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _failure, e, null);
            _log($"mis-seccomp: a supervisor thread of cgroup {_cgroupName} stopped: {e.Message}; when none is left, its workload's notified syscalls fail (ENOSYS)");
        }
        finally
        {
            NativeMemory.Free(buffer);
            if (Interlocked.Decrement(ref _threads) == 0)
                Finish();
        }
    }

    /// <summary>
    /// RECV one notification, never waiting in it: RECV blocks when another thread took the one
    /// poll saw, and a thread blocked there can neither retire nor see the stop event. So threads
    /// receive one at a time, and with more than one thread the notification is looked for again
    /// once it is this thread's turn. 0, EAGAIN (none left for this thread) or RECV's errno.
    /// </summary>
    private int TryReceive(byte* buffer)
    {
        if (!Monitor.TryEnter(_receiving))
            return Errno.EAGAIN; // another thread is receiving: it takes this one
        try
        {
            if (Volatile.Read(ref _threads) > 1)
            {
                var probe = new Libc.PollFd { Fd = _listener, Events = Libc.POLLIN };
                if (Libc.Poll(&probe, 1, 0) <= 0 || (probe.Revents & Libc.POLLIN) == 0)
                    return Errno.EAGAIN;
            }
            // Only holders of _receiving call RECV: what poll saw is still there (its caller may
            // have died since: ENOENT).
            return SeccompNotify.Receive(_listener, buffer, _notificationSize);
        }
        finally
        {
            Monitor.Exit(_receiving);
        }
    }

    /// <summary>The last thread out closes everything: from then on the workload's notified syscalls fail with ENOSYS.</summary>
    private void Finish()
    {
        _fifos.Dispose();
        // Closing the listener fails every pending and future notified syscall of the
        // workload with ENOSYS: without a supervisor nothing of the class is allowed.
        _listenerHandle.Dispose();
        _listenerHandle.DangerousRelease();
        Libc.Close(_rootFd);
        Libc.Close(_selfFdDir);
        if (_ownRoot >= 0)
            Libc.Close(_ownRoot);
        _names.Dispose();
        Libc.Close(_stopEvent);
        if (_failure is null)
            _completion.TrySetResult();
        else
            _completion.TrySetException(_failure);
    }

    /// <summary>
    /// Starts another thread when every thread is busy and a notification is already waiting: the
    /// workload has more threads in notified syscalls than the supervisor has free. Checked on
    /// every eighth notification only, so a single-threaded workload pays one poll in eight.
    /// </summary>
    private void GrowIfBehind()
    {
        if (!_syncWakeUp || (Interlocked.Increment(ref _received) & 7) != 0
            || Volatile.Read(ref _idleThreads) > 0 || Volatile.Read(ref _threads) >= MaxThreads)
            return;
        var probe = new Libc.PollFd { Fd = _listener, Events = Libc.POLLIN };
        if (Libc.Poll(&probe, 1, 0) <= 0 || (probe.Revents & Libc.POLLIN) == 0)
            return;
        int count = Interlocked.Increment(ref _threads);
        if (count > MaxThreads || Volatile.Read(ref _disposed) != 0)
        {
            Interlocked.Decrement(ref _threads);
            return;
        }
        for (int peak = Volatile.Read(ref Stats.PeakThreads); count > peak; peak = Volatile.Read(ref Stats.PeakThreads))
            Interlocked.CompareExchange(ref Stats.PeakThreads, count, peak);
        ReleaseCpu();
        new Thread(() => Run(primary: false)) { IsBackground = true, Name = $"{_thread.Name}-{count}" }.Start();
    }

    private void Handle(in SeccompNotify.Notification n)
    {
        Interlocked.Increment(ref Stats.Notifications);
        var task = new WorkloadTask((int)n.Pid);
        try
        {
            if (n.Arch != AuditArchX86_64) // the filter kills foreign ABIs; never trust that here
            {
                Fail(n.Id, Errno.EPERM);
                return;
            }
            switch (n.Nr)
            {
                case Syscalls.Open or Syscalls.Openat or Syscalls.Openat2 or Syscalls.Creat:
                    using (ResolvingNames())
                        HandleOpen(n, task);
                    break;
                case Syscalls.Execve or Syscalls.Execveat:
                    using (ResolvingNames())
                        HandleExec(n, task);
                    break;
                case Syscalls.Ioctl when Syscalls.ChangesFile((uint)n.Args[1]):
                case var nr when Syscalls.FileChanges.ContainsKey(nr):
                    using (ChangingNames())
                        HandleChange(n, task);
                    break;
                case Syscalls.Kill or Syscalls.Tkill or Syscalls.Tgkill or Syscalls.RtSigqueueinfo
                    or Syscalls.RtTgsigqueueinfo or Syscalls.PidfdOpen or Syscalls.Prlimit64
                    or Syscalls.SchedSetaffinity or Syscalls.SchedSetscheduler or Syscalls.SchedSetparam
                    or Syscalls.SchedSetattr or Syscalls.Setpriority or Syscalls.IoprioSet
                    or Syscalls.Fcntl or Syscalls.Ioctl:
                    HandleProcessTarget(n, task);
                    break;
                default:
                    Deny(n.Id, ViolationOp.EscapeSyscall, task, Syscalls.Name(n.Nr));
                    break;
            }
        }
        catch (CredentialSwitchException)
        {
            Fail(n.Id, Errno.EPERM);
            throw; // this thread's credentials are no longer known to be its own: stop
        }
        catch (Exception e)
        {
            _log($"mis-seccomp: {Syscalls.Name(n.Nr)} from tid {n.Pid} in {_cgroupName}: {e.GetType().Name}: {e.Message}; answered EPERM");
            Fail(n.Id, Errno.EPERM);
        }
    }

    private NamesScope ResolvingNames()
    {
        _names.EnterReadLock();
        return new NamesScope(_names, write: false);
    }

    private NamesScope ChangingNames()
    {
        _names.EnterWriteLock();
        return new NamesScope(_names, write: true);
    }

    /// <summary>Holds <see cref="_names"/> for one decision (a struct: nothing allocated per notification).</summary>
    private readonly ref struct NamesScope(ReaderWriterLockSlim names, bool write)
    {
        public void Dispose()
        {
            if (write)
                names.ExitWriteLock();
            else
                names.ExitReadLock();
        }
    }

    /// <summary>The policy's verdict, at the cgroup's current DEFCON level; a trace verdict is reported as an event.</summary>
    private Verdict Decide(FileRequest request, WorkloadTask task)
    {
        var verdict = _decider.Decide(request, _sink.Defcon(_cgroupId));
        if (verdict != Verdict.Trace)
            return verdict;
        var op = request.Op switch { FileOp.Read => ViolationOp.FileRead, FileOp.Write => ViolationOp.FileWrite, _ => ViolationOp.Exec };
        try
        {
            _sink.Trace(new ViolationReport(_cgroupId, op, task.Tgid ?? task.Tid, task.Tid, request.Path));
        }
        catch (Exception e)
        {
            _log($"mis-seccomp: reporting the trace of {op} {request.Path} for {_cgroupName} failed: {e.Message}");
        }
        return verdict;
    }

    /// <summary>Reports the violation, then refuses with EPERM: the state machine counts it before the workload can react.</summary>
    private void Deny(ulong id, ViolationOp op, WorkloadTask task, string target)
    {
        Interlocked.Increment(ref Stats.Denied);
        try
        {
            _sink.Report(new ViolationReport(_cgroupId, op, task.Tgid ?? task.Tid, task.Tid, target));
        }
        catch (Exception e)
        {
            _log($"mis-seccomp: reporting {op} {target} for {_cgroupName} failed: {e.Message}");
        }
        Reply(id, Errno.EPERM);
    }

    /// <summary>An error answer that is no violation (ENOENT, EACCES, ...: what the kernel would have said).</summary>
    private void Fail(ulong id, int errno)
    {
        Interlocked.Increment(ref Stats.Errors);
        Reply(id, errno);
    }

    internal void Reply(ulong id, int errno)
    {
        if (errno <= 0)
        {
            // An error answer of 0 would be a successful syscall returning 0 (for an open: fd 0).
            _log($"mis-seccomp: internal error: answering errno {errno} for {_cgroupName}; EPERM instead");
            errno = Errno.EPERM;
        }
        byte* buffer = stackalloc byte[_responseSize];
        SeccompNotify.Respond(_listener, buffer, _responseSize, new SeccompNotify.Response { Id = id, Error = -errno });
    }

    private void Continue(ulong id)
    {
        Interlocked.Increment(ref Stats.Allowed);
        byte* buffer = stackalloc byte[_responseSize];
        SeccompNotify.Respond(_listener, buffer, _responseSize, new SeccompNotify.Response { Id = id, Flags = SeccompNotify.FlagContinue });
    }

    /// <summary>Installs <paramref name="fd"/> as the syscall's result and closes ours.</summary>
    /// <param name="id">The notification.</param>
    /// <param name="fd">Our fd of the file to hand over.</param>
    /// <param name="closeOnExec">O_CLOEXEC on the workload's new fd.</param>
    /// <param name="tid">The notifying thread, to keep the hand-off on this CPU (<see cref="ReplyFdOnThisCpu"/>); 0: not known.</param>
    internal void ReplyFd(ulong id, int fd, bool closeOnExec, int tid = 0)
    {
        int rc = tid > 0 && _syncWakeUp ? ReplyFdOnThisCpu(id, fd, closeOnExec, tid) : SeccompNotify.AddFdAndSend(_listener, id, fd, closeOnExec);
        Libc.Close(fd);
        if (rc >= 0)
            Interlocked.Increment(ref Stats.Allowed);
        else if (rc != -Errno.ENOENT) // ENOENT: the caller is gone; EMFILE etc. are the caller's answer
            Fail(id, -rc);
    }

    /// <summary>
    /// The fd hand-off without a wake-up on another CPU. ADDFD wakes the waiting task with a plain
    /// wake-up, and the task wakes this thread the same way once it has installed the fd; the
    /// scheduler sends each to an idle CPU when there is one, and on a VM whose idle vCPUs halt
    /// that costs 30–40 µs each way (ARCHITECTURE.md), most of an enforced open. So the task and
    /// this thread are both held to this CPU (where the synchronous wake-up brought this thread)
    /// while the fd is installed; then the task gets its own CPUs back while it still waits for the
    /// answer (nothing of its own runs in between, so nothing of its own is overwritten), and the
    /// answer is sent with the synchronous wake-up, which runs it on this CPU too. Measured with
    /// a one-thread reader (open, read, close in a loop) at load 2–3: 132 → 73 µs per open, and
    /// remote wake-ups (function-call IPIs) from 0.49 to 0.03 per open. While it is the only
    /// supervisor thread and serves the same task as last time, this thread stays held to the CPU
    /// afterwards: the task notifies again from here, and the next hand-off makes two affinity
    /// calls fewer (affinity calls per open, p50, 11.3 → 4.7 µs). Plain
    /// <see cref="SeccompNotify.AddFdAndSend"/> where the task may not run here (its own mask, a
    /// cpuset) or the CPU is not known. The one difference: a signal between the two steps leaves
    /// the installed fd in the task's table (a file the policy allowed it to open) while its open
    /// is restarted. The thread is named by its tid, which cannot name another process meanwhile:
    /// it is blocked in the syscall until answered, and a killed thread's tid returns to use only
    /// after the pid space wraps.
    /// </summary>
    private int ReplyFdOnThisCpu(ulong id, int fd, bool closeOnExec, int tid)
    {
        byte* own = stackalloc byte[Libc.CpuMaskBytes];
        byte* here = stackalloc byte[Libc.CpuMaskBytes];
        int cpu = Libc.SchedGetCpu();
        if (cpu < 0 || cpu >= Libc.CpuMaskBytes * 8 || Libc.SchedGetAffinity(tid, Libc.CpuMaskBytes, own) < 0
            || (own[cpu / 8] & (1 << (cpu % 8))) == 0)
            return SeccompNotify.AddFdAndSend(_listener, id, fd, closeOnExec);
        new Span<byte>(here, Libc.CpuMaskBytes).Clear();
        here[cpu / 8] = (byte)(1 << (cpu % 8));
        if (Libc.SchedSetAffinity(tid, Libc.CpuMaskBytes, here) != 0)
            return SeccompNotify.AddFdAndSend(_listener, id, fd, closeOnExec);
        // tid 0: this thread. Held here, its wake-up by the task stays here too.
        byte[] mine = t_ownCpus ??= OwnCpus();
        bool selfPinned = t_pinnedTo == cpu + 1 || (mine.Length > 0 && Libc.SchedSetAffinity(0, Libc.CpuMaskBytes, here) == 0);
        t_pinnedTo = selfPinned ? cpu + 1 : 0;
        int installed = SeccompNotify.AddFdOnly(_listener, id, fd, closeOnExec);
        Libc.SchedSetAffinity(tid, Libc.CpuMaskBytes, own); // ESRCH: gone meanwhile, nothing to give back
        // The only thread, serving the same task again, stays where it is: the task is woken here
        // by the answer and notifies from here, so the next hand-off finds both on this CPU (two
        // affinity calls fewer per open). Threads that share the work, and a thread serving tasks
        // in turn (processes that may run on other CPUs, which a held thread would draw here),
        // go back to all their CPUs.
        bool again = tid == t_lastTid;
        t_lastTid = tid;
        if (!again || Volatile.Read(ref _threads) > 1)
            ReleaseCpu();
        if (installed < 0)
            return installed;
        byte* buffer = stackalloc byte[_responseSize];
        int errno = SeccompNotify.Respond(_listener, buffer, _responseSize, new SeccompNotify.Response { Id = id, Value = installed });
        return errno == 0 ? installed : -errno;
    }

    /// <summary>
    /// Gives this thread its own CPUs back if a hand-off left it held to one. Also before it starts
    /// a thread: a new thread inherits its creator's CPU mask, and would take the held CPU for all
    /// of its own.
    /// </summary>
    private static void ReleaseCpu()
    {
        if (t_pinnedTo == 0)
            return;
        fixed (byte* m = t_ownCpus)
            Libc.SchedSetAffinity(0, Libc.CpuMaskBytes, m);
        t_pinnedTo = 0;
    }

    /// <summary>This thread's own CPUs, read once: only <see cref="ReplyFdOnThisCpu"/> changes them, and gives them back. Empty when unreadable.</summary>
    private static byte[] OwnCpus()
    {
        var mask = new byte[Libc.CpuMaskBytes];
        fixed (byte* m = mask)
            return Libc.SchedGetAffinity(0, Libc.CpuMaskBytes, m) >= 0 ? mask : [];
    }

    internal bool IdValid(ulong id) => SeccompNotify.IdValid(_listener, id);

    internal ThreadCredentials Credentials => _credentials;

    /// <summary>Whether <paramref name="pid"/> (or tid) is a process of this workload's cgroup.</summary>
    private bool InWorkload(int pid) => ProcFacts.CgroupOf(pid) == _cgroupName;

    /// <summary>Stops the threads (the workload's notified syscalls then fail with ENOSYS) and waits for the first.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (_thread.ThreadState == ThreadState.Unstarted)
        {
            _listenerHandle.DangerousRelease();
            Libc.Close(_rootFd);
            Libc.Close(_selfFdDir);
            Libc.Close(_stopEvent);
            return;
        }
        // Count as a thread while signalling, so the last thread out cannot close the stop event
        // (Finish) between the check and the write; none left means all is closed already.
        int running;
        do
            running = Volatile.Read(ref _threads);
        while (running > 0 && Interlocked.CompareExchange(ref _threads, running + 1, running) != running);
        if (running == 0)
            return;
        ulong one = 1;
        Libc.Write(_stopEvent, (byte*)&one, sizeof(ulong));
        if (Thread.CurrentThread != _thread)
            _thread.Join(TimeSpan.FromSeconds(10));
        if (Interlocked.Decrement(ref _threads) == 0)
            Finish();
    }

    private void Cleanup()
    {
        if (_stopEvent >= 0)
            Libc.Close(_stopEvent);
        if (_rootFd >= 0)
            Libc.Close(_rootFd);
        if (_selfFdDir >= 0)
            Libc.Close(_selfFdDir);
        _listenerHandle.DangerousRelease();
    }
}
