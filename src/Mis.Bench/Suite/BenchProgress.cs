namespace Mis.Bench.Suite;

/// <summary>
/// The progress line on stderr: rewritten in place on a terminal, otherwise one line per stage
/// (so a log file is not flooded), and nothing in JSON mode's stdout.
/// </summary>
public sealed class BenchProgress
{
    private readonly bool _terminal = !Console.IsErrorRedirected;
    private string _stage = "";
    private int _lastWidth;

    /// <summary>Starts a stage ("kernel overhead 2/5", ...).</summary>
    public void Stage(string stage)
    {
        _stage = stage;
        if (_terminal)
            Write(stage);
        else
            Console.Error.WriteLine($"mis bench: {stage}");
    }

    /// <summary>Updates the current stage with a detail (only shown on a terminal).</summary>
    public void Update(string detail)
    {
        if (_terminal)
            Write($"{_stage}: {detail}");
    }

    /// <summary>Ends the progress line.</summary>
    public void Done()
    {
        if (_terminal && _lastWidth > 0)
            Console.Error.Write("\r" + new string(' ', _lastWidth) + "\r");
        _lastWidth = 0;
    }

    private void Write(string text)
    {
        string line = $"mis bench: {text}";
        Console.Error.Write("\r" + line.PadRight(_lastWidth));
        _lastWidth = line.Length;
    }
}
