using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Mis.Cli.Terminal;

/// <summary>
/// Progress of a long command on one console stream, stage by stage. On a terminal, Spectre.Console
/// draws live bars (percentage, rate, elapsed time and ETA, a spinner while a stage has no measure);
/// when the stream is redirected (a log file, CI, a pipe) it writes plain lines instead: one when a
/// stage starts, then one per 10 % or per 10 s, and one when it ends. No control characters there.
/// </summary>
/// <remarks>
/// Spectre's own fallback for non-interactive consoles is not used for the plain lines: its format
/// carries no rate or ETA, and these lines are what CI logs keep. They still take the rate and the
/// ETA from Spectre's <see cref="ProgressTask"/>, as the live bars do.
/// </remarks>
internal sealed class ConsoleProgress : IDisposable
{
    private static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(10);

    private readonly string _name;
    private readonly TextWriter _output;
    private readonly IAnsiConsole? _console;
    private readonly string _unit;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private LiveDisplay? _live;
    private ProgressTask? _task;
    private string _stage = "";
    private int _lastDecile = -1;
    private long _lastLine;
    private int _taskIds;

    /// <summary>Progress written to <paramref name="output"/>, live bars when <paramref name="live"/>, plain lines otherwise.</summary>
    /// <param name="name">What prefixes every plain line, e.g. <c>mis bench</c>.</param>
    /// <param name="output">The stream: standard error for most commands.</param>
    /// <param name="live">Draw live bars (a terminal that takes ANSI sequences) rather than lines.</param>
    /// <param name="unit">What the counts count ("ep" shows "12.5 ep/s"); empty for fractions, which show no rate.</param>
    /// <param name="time">The clock of the rate and the plain lines' interval (tests pass a fake one).</param>
    internal ConsoleProgress(string name, TextWriter output, bool live, string unit = "", TimeProvider? time = null)
    {
        _name = name;
        _output = output;
        _unit = unit;
        _time = time ?? TimeProvider.System;
        if (live)
            _console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(output),
                Ansi = AnsiSupport.Yes,
                Interactive = InteractionSupport.Yes,
            });
    }

    /// <summary>Progress on standard error: live bars when it is a terminal Spectre can draw on, plain lines otherwise.</summary>
    internal static ConsoleProgress OnStandardError(string name, string unit = "") =>
        new(name, Console.Error, !Console.IsErrorRedirected && CanDrawOn(Console.Error), unit);

    /// <summary>Progress on standard output (where <c>mis gym run</c> reports), live only on a terminal.</summary>
    internal static ConsoleProgress OnStandardOutput(string name, string unit = "") =>
        new(name, Console.Out, !Console.IsOutputRedirected && CanDrawOn(Console.Out), unit);

    // Spectre's detection (TERM, CI variables): a dumb terminal or a CI runner gets plain lines.
    private static bool CanDrawOn(TextWriter stream)
    {
        var profile = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stream) }).Profile;
        return profile.Capabilities.Ansi && profile.Capabilities.Interactive;
    }

    /// <summary>Starts a stage (ending the one before): <paramref name="total"/> units of work, or null when there is no measure of how far it is.</summary>
    internal void Stage(string stage, double? total = null)
    {
        lock (_gate)
        {
            EndStage();
            _stage = stage;
            _lastDecile = -1;
            _lastLine = _time.GetTimestamp();
            if (_console is not null)
            {
                _live ??= new LiveDisplay(_console, _unit);
                _task = _live.Context.AddTask(Markup.Escape(stage), autoStart: true, maxValue: total ?? 1);
                _task.IsIndeterminate = total is null;
                return;
            }
            _task = new ProgressTask(++_taskIds, stage, total ?? 1, autoStart: true, _time) { IsIndeterminate = total is null };
            _output.WriteLine($"{_name}: {stage}");
        }
    }

    /// <summary>Reports <paramref name="done"/> units of the stage (of <paramref name="total"/>, when it changed), with an optional detail; a value below the last is ignored.</summary>
    internal void Report(double done, double? total = null, string? detail = null)
    {
        lock (_gate)
        {
            if (_task is null)
                return;
            if (total is { } t)
                _task.MaxValue = Math.Max(t, double.Epsilon);
            _task.IsIndeterminate = false;
            // Never backwards: Progress<T> callbacks run on the thread pool and can arrive out of order.
            _task.Value = Math.Max(_task.Value, Math.Clamp(double.IsFinite(done) ? done : 0, 0, _task.MaxValue));
            if (_live is not null)
            {
                if (detail is not null)
                    _live.Details[_task.Id] = detail;
                return;
            }
            int decile = (int)(_task.Percentage / 10);
            if (decile == _lastDecile && _time.GetElapsedTime(_lastLine) < PlainInterval)
                return;
            _lastDecile = decile;
            _lastLine = _time.GetTimestamp();
            _output.WriteLine(PlainLine(_task, detail));
        }
    }

    /// <summary>Shows a detail of the stage (which step it is on); on a terminal only, it makes no plain line.</summary>
    internal void Detail(string detail)
    {
        lock (_gate)
        {
            if (_live is not null && _task is not null)
                _live.Details[_task.Id] = detail;
        }
    }

    /// <summary>Ends the stage and the live display (before a command prints its results).</summary>
    internal void Done()
    {
        lock (_gate)
        {
            EndStage();
            _live?.End();
            _live = null;
        }
    }

    /// <summary>Same as <see cref="Done"/>; safe to call twice.</summary>
    public void Dispose() => Done();

    private void EndStage()
    {
        if (_task is null)
            return;
        if (_task.IsIndeterminate)
        {
            _task.IsIndeterminate = false;
            _task.Value = _task.MaxValue;
        }
        if (_live is not null)
            _live.Details.TryRemove(_task.Id, out _);
        else if (_task.Percentage > 0)
            _output.WriteLine($"{_name}: {_stage} done at {_task.Percentage:0}% in {Time(_task.ElapsedTime ?? TimeSpan.Zero)}");
        _task.StopTask();
        _task = null;
    }

    // "mis gym run: 12/36 episodes (33%, 3.2 ep/s, ETA 0:04)  deny / seed 0", or without a unit
    // "mis anomaly: train ngram 40% (ETA 0:12)  fit".
    private string PlainLine(ProgressTask task, string? detail)
    {
        var line = new System.Text.StringBuilder(_name).Append(": ");
        var parts = new List<string>();
        if (_unit.Length > 0)
        {
            line.Append(Number(task.Value)).Append('/').Append(Number(task.MaxValue)).Append(' ').Append(_stage);
            parts.Add($"{task.Percentage:0}%");
            parts.Add(task.Speed is > 0 and var speed ? $"{speed.ToString("0.#", CultureInfo.InvariantCulture)} {_unit}/s" : $"- {_unit}/s");
        }
        else
        {
            line.Append(_stage).Append(' ').Append($"{task.Percentage:0}%");
        }
        if (!task.IsFinished)
            parts.Add(task.RemainingTime is { } eta ? $"ETA {Time(eta)}" : "ETA --:--");
        if (parts.Count > 0)
            line.Append(" (").AppendJoin(", ", parts).Append(')');
        if (!string.IsNullOrEmpty(detail))
            line.Append("  ").Append(detail);
        return line.ToString();
    }

    private static string Number(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Time(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{t.Minutes}:{t.Seconds:00}";

    /// <summary>
    /// One Spectre live progress display, run on its own task while the command pushes updates:
    /// Spectre's display owns the call that starts it, the command's work runs outside it.
    /// </summary>
    private sealed class LiveDisplay
    {
        private readonly TaskCompletionSource _end = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Task _running;
        private readonly IAnsiConsole _console;
        private readonly PosixSignalRegistration[] _signals;

        internal LiveDisplay(IAnsiConsole console, string unit)
        {
            _console = console;
            var columns = new List<ProgressColumn>
            {
                new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 30 }, new PercentageColumn(),
            };
            if (unit.Length > 0)
                columns.Add(new RateColumn(unit));
            columns.AddRange([new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn(), new DetailColumn(Details)]);
            var ready = new TaskCompletionSource<ProgressContext>(TaskCreationOptions.RunContinuationsAsynchronously);
            var progress = console.Progress().AutoClear(false).HideCompleted(false).Columns([.. columns]);
            _running = Task.Run(() => progress.StartAsync(async context =>
            {
                ready.SetResult(context);
                await _end.Task.ConfigureAwait(false);
            }));
            Task.WhenAny(ready.Task, _running).GetAwaiter().GetResult();
            if (!ready.Task.IsCompleted)
                _running.GetAwaiter().GetResult(); // the display failed to start: its exception
            Context = ready.Task.Result;
            // Spectre hides the cursor while it draws; Ctrl+C in the middle must not leave the terminal
            // without one. The handlers do not cancel the signal: the command still ends as it would.
            _signals = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT }
                .Select(signal => PosixSignalRegistration.Create(signal, _ => _console.Cursor.Show()))];
            AppDomain.CurrentDomain.ProcessExit += ShowCursor;
        }

        internal ProgressContext Context { get; }

        /// <summary>Each task's detail, by task id; Spectre's per-task state holds numbers only.</summary>
        internal ConcurrentDictionary<int, string> Details { get; } = new();

        /// <summary>Draws the final state and returns once the display has let go of the console.</summary>
        internal void End()
        {
            _end.TrySetResult();
            _running.GetAwaiter().GetResult();
            AppDomain.CurrentDomain.ProcessExit -= ShowCursor;
            foreach (var signal in _signals)
                signal.Dispose();
        }

        private void ShowCursor(object? sender, EventArgs e) => _console.Cursor.Show();
    }

    /// <summary>Units per second (Spectre's own speed column is for bytes).</summary>
    private sealed class RateColumn(string unit) : ProgressColumn
    {
        protected override bool NoWrap => true;

        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is > 0 and var speed ? $"{speed.ToString("0.#", CultureInfo.InvariantCulture)} {unit}/s" : $"- {unit}/s");
    }

    /// <summary>The stage's detail (which run, which step), last and cut to the line: the bars stay on one line each.</summary>
    private sealed class DetailColumn(ConcurrentDictionary<int, string> details) : ProgressColumn
    {
        protected override bool NoWrap => true;

        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(details.GetValueOrDefault(task.Id, "")) { Overflow = Overflow.Ellipsis };
    }
}
