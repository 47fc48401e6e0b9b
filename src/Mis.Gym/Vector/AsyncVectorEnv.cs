using System.Runtime.ExceptionServices;

namespace Mis.Gym.Vector;

/// <summary>
/// Runs each sub-environment on a thread of its own (Gymnasium's <c>AsyncVectorEnv</c>, with
/// threads instead of processes): a step hands every worker its index at once and waits for all of
/// them. Worth it when a sub-environment's step is slow (a real workload under the kernel backend);
/// for the microsecond steps of the simulator the hand-off costs more than it saves, and
/// <see cref="SyncVectorEnv{TObs, TAct}"/> is faster. Results are identical to the synchronous
/// version for the same seeds and actions (see <see cref="VectorEnv{TObs, TAct}"/>).
/// </summary>
/// <typeparam name="TObs">Observation type.</typeparam>
/// <typeparam name="TAct">Action type.</typeparam>
public sealed class AsyncVectorEnv<TObs, TAct> : VectorEnv<TObs, TAct>
{
    private readonly Worker[] _workers;
    private readonly CountdownEvent _finished;
    private Action<int>? _work;
    private volatile bool _stopping;

    /// <summary>Creates the sub-environments and starts one worker thread per sub-environment.</summary>
    /// <param name="envFactories">One factory per sub-environment.</param>
    public AsyncVectorEnv(IReadOnlyList<Func<IEnv<TObs, TAct>>> envFactories)
        : base(envFactories)
    {
        _finished = new CountdownEvent(NumEnvs);
        _workers = new Worker[NumEnvs];
        for (int i = 0; i < NumEnvs; i++)
        {
            _workers[i] = new Worker(this, i);
            _workers[i].Thread.Start();
        }
    }

    /// <inheritdoc />
    protected override void RunAll(Action<int> work)
    {
        _work = work;
        _finished.Reset(NumEnvs);
        foreach (var worker in _workers)
        {
            worker.Error = null;
            worker.Go.Release();
        }
        _finished.Wait();
        _work = null;
        foreach (var worker in _workers)
        {
            if (worker.Error is { } error)
                ExceptionDispatchInfo.Capture(error).Throw();
        }
    }

    /// <inheritdoc />
    protected override void CloseCore()
    {
        _stopping = true;
        foreach (var worker in _workers)
            worker.Go.Release();
        foreach (var worker in _workers)
        {
            worker.Thread.Join();
            worker.Go.Dispose();
        }
        _finished.Dispose();
    }

    private sealed class Worker
    {
        private readonly AsyncVectorEnv<TObs, TAct> _owner;
        private readonly int _index;

        internal Worker(AsyncVectorEnv<TObs, TAct> owner, int index)
        {
            _owner = owner;
            _index = index;
            Thread = new Thread(Loop) { IsBackground = true, Name = $"mis-gym-env-{index}" };
        }

        internal Thread Thread { get; }

        internal SemaphoreSlim Go { get; } = new(0);

        internal Exception? Error { get; set; }

        private void Loop()
        {
            while (true)
            {
                Go.Wait();
                if (_owner._stopping)
                    return;
                try
                {
                    _owner._work!(_index);
                }
                catch (Exception e)
                {
                    Error = e;
                }
                finally
                {
                    _owner._finished.Signal();
                }
            }
        }
    }
}
