using Mis.Native;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// Blocking opens of FIFOs. Opening a FIFO waits for the other end; done on the supervisor thread
/// it would stall every other syscall of the workload — including the open of that other end, a
/// deadlock. So each such open runs on a short-lived thread of its own (under the workload's
/// credentials, which are per thread) and answers its notification when it completes. If the
/// caller goes away meanwhile (killed; its notification no longer valid), the supervisor opens the
/// FIFO's other end once, non-blocking, which releases the waiting open.
/// At most <see cref="MaxWaiting"/> opens wait at once: a thread each is the enforcer's memory and
/// the host's threads, and a workload must not be able to make the enforcer allocate without bound.
/// One more is answered EAGAIN at once (no violation: it is the enforcer's limit, not the policy's).
/// </summary>
public sealed unsafe class FifoOpens : IDisposable
{
    /// <summary>
    /// Waiting FIFO opens per workload. A pipeline of shells or a few worker processes rendezvousing
    /// on FIFOs stays far below this; a thousand concurrent waiters is an attack on the enforcer.
    /// </summary>
    internal const int MaxWaiting = 16;

    private readonly SeccompSupervisor _supervisor;
    private readonly Dictionary<ulong, Pending> _pending = [];
    private readonly object _gate = new();

    private sealed record Pending(ulong Id, int OPath, int Flags, Thread Worker);

    internal FifoOpens(SeccompSupervisor supervisor) => _supervisor = supervisor;

    /// <summary>How many opens are waiting.</summary>
    internal int Count
    {
        get
        {
            lock (_gate)
                return _pending.Count;
        }
    }

    /// <summary>Opens the FIFO behind <paramref name="opath"/> (ours from now on) with <paramref name="flags"/> and answers <paramref name="id"/> with the fd (EAGAIN beyond <see cref="MaxWaiting"/>).</summary>
    internal void Start(ulong id, int opath, int flags, bool closeOnExec)
    {
        var worker = new Thread(() => Open(id, opath, flags, closeOnExec)) { IsBackground = true, Name = "mis-seccomp-fifo" };
        lock (_gate)
        {
            if (_pending.Count >= MaxWaiting)
            {
                Libc.Close(opath);
                _supervisor.Reply(id, Errno.EAGAIN);
                return;
            }
            _pending[id] = new Pending(id, opath, flags, worker);
        }
        worker.Start();
    }

    private void Open(ulong id, int opath, int flags, bool closeOnExec)
    {
        int fd = -1, errno = 0;
        try
        {
            using (_supervisor.Credentials.Assume())
            {
                fd = _supervisor.Reopen(opath, flags, 0);
                errno = fd < 0 ? Libc.LastErrno : 0;
            }
        }
        catch (CredentialSwitchException)
        {
            errno = Errno.EPERM;
        }
        finally
        {
            lock (_gate)
                _pending.Remove(id);
            Libc.Close(opath);
        }
        if (fd >= 0)
            _supervisor.ReplyFd(id, fd, closeOnExec);
        else
            _supervisor.Reply(id, errno);
    }

    /// <summary>Releases the opens whose caller is gone (called from the supervisor thread).</summary>
    internal void Sweep()
    {
        Pending[] gone;
        lock (_gate)
            gone = [.. _pending.Values.Where(p => !_supervisor.IdValid(p.Id))];
        foreach (var p in gone)
            Release(p);
    }

    private void Release(Pending p)
    {
        // A waiting reader is released by a writer appearing, and a waiting writer by a reader.
        int other = (p.Flags & Libc.O_ACCMODE) == Libc.O_RDONLY ? Libc.O_WRONLY : Libc.O_RDONLY;
        lock (_gate)
        {
            if (!_pending.ContainsKey(p.Id))
                return; // finished meanwhile; its O_PATH fd is closed (and its number maybe reused)
            int fd = _supervisor.Reopen(p.OPath, other | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
            if (fd >= 0)
                Libc.Close(fd);
        }
    }

    /// <summary>Releases every waiting open and waits for the workers.</summary>
    public void Dispose()
    {
        Pending[] all;
        lock (_gate)
            all = [.. _pending.Values];
        foreach (var p in all)
        {
            Release(p);
            p.Worker.Join(TimeSpan.FromSeconds(5));
        }
    }
}
