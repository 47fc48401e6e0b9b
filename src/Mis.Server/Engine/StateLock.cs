using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Mis.Native;

namespace Mis.Server.Engine;

/// <summary>Another enforcer holds the state directory; the message names it and what to do.</summary>
public sealed class StateLockedException(string message) : Exception(message);

/// <summary>
/// One enforcer per state directory: an exclusive <c>flock</c> on <c>[paths] state_dir/enforcer.lock</c>,
/// held for the enforcer's lifetime. The kernel drops the lock when the process dies however it
/// dies, so a stale file never blocks a restart. The holder's PID is written into the file for the
/// refusal message only; the lock, not the PID, is what decides.
/// </summary>
public sealed class StateLock : IDisposable
{
    internal const string FileName = "enforcer.lock";

    private readonly SafeFileHandle _file;

    private StateLock(SafeFileHandle file, string path)
    {
        _file = file;
        Path = path;
    }

    /// <summary>The lock file.</summary>
    internal string Path { get; }

    /// <summary>Creates the state directory if needed (0700) and takes the lock without waiting.</summary>
    /// <exception cref="StateLockedException">Another process holds it.</exception>
    internal static StateLock Acquire(string stateDir)
    {
        Directory.CreateDirectory(stateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string path = System.IO.Path.Combine(stateDir, FileName);
        // open(2) directly: .NET's FileStream takes a shared flock of its own on open, which
        // would fail against the holder's exclusive lock before this code could name the holder.
        var file = PosixFiles.OpenOrCreate(path, UnixFileMode.UserRead | UnixFileMode.UserWrite, out int openErrno)
            ?? throw new StateLockedException($"cannot open {path}: {Marshal.GetPInvokeErrorMessage(openErrno)}");
        if (PosixFiles.Flock(file, PosixFiles.LOCK_EX | PosixFiles.LOCK_NB) is int errno and not 0)
        {
            string holder = ReadHolder(file);
            file.Dispose();
            throw new StateLockedException(errno == Errno.EWOULDBLOCK
                ? $"another mis enforcer{holder} already runs with the state directory {stateDir} (it holds {path}); stop it, or give this one another [paths] state_dir"
                : $"cannot lock {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        byte[] pid = Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n");
        RandomAccess.SetLength(file, 0);
        RandomAccess.Write(file, pid, 0);
        return new StateLock(file, path);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_file.IsClosed)
            return;
        RandomAccess.SetLength(_file, 0);
        _ = PosixFiles.Flock(_file, PosixFiles.LOCK_UN);
        _file.Dispose();
    }

    private static string ReadHolder(SafeFileHandle file)
    {
        var buffer = new byte[32];
        int n = RandomAccess.Read(file, buffer, 0);
        return int.TryParse(Encoding.ASCII.GetString(buffer, 0, n).Trim(), out int pid) ? $" (pid {pid})" : "";
    }
}
