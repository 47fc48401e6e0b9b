using System.Collections.Concurrent;

namespace Mis.Enforcer.Confinement;

/// <summary>
/// The one thread that spawns every launcher and guard. PR_SET_PDEATHSIG fires when the parent
/// *thread* exits, not the parent process: a launcher spawned from a thread-pool thread would be
/// SIGKILLed when that thread retires after idling. This thread lives as long as the enforcer.
/// </summary>
public static class SpawnThread
{
    private static readonly BlockingCollection<(Func<int> Spawn, TaskCompletionSource<int> Done)> Queue = [];
    private static readonly Lazy<Thread> Worker = new(() =>
    {
        var thread = new Thread(Loop) { IsBackground = true, Name = "mis-spawn" };
        thread.Start();
        return thread;
    });

    /// <summary>Runs <paramref name="spawn"/> (a posix_spawn returning the pid) on the spawn thread and returns its result.</summary>
    internal static int Run(Func<int> spawn)
    {
        _ = Worker.Value;
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        Queue.Add((spawn, done));
        return done.Task.GetAwaiter().GetResult();
    }

    private static void Loop()
    {
        foreach (var (spawn, done) in Queue.GetConsumingEnumerable())
        {
            try
            {
                done.SetResult(spawn());
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }
    }
}
