namespace Mis.Anomaly;

/// <summary>
/// A one-line progress bar on stderr (redrawn in place on a terminal; a line per 10% otherwise, so
/// logs stay readable).
/// </summary>
public sealed class ProgressBar(string title, TextWriter? output = null)
{
    private const int Width = 30;
    private readonly TextWriter _out = output ?? Console.Error;
    private readonly bool _interactive = output is null && !Console.IsErrorRedirected;
    private readonly Lock _gate = new();
    private int _lastDecile = -1;
    private long _lastDraw;

    /// <summary>Shows <paramref name="fraction"/> (0..1) done, with a label.</summary>
    public void Report(double fraction, string label = "")
    {
        fraction = Math.Clamp(double.IsFinite(fraction) ? fraction : 0, 0, 1);
        lock (_gate)
        {
            if (_interactive)
            {
                // Redraw at most 20 times a second (and always at the end).
                if (fraction < 1 && Environment.TickCount64 - _lastDraw < 50)
                    return;
                _lastDraw = Environment.TickCount64;
                int filled = (int)(fraction * Width);
                string text = $"\r{title} [{new string('#', filled)}{new string('.', Width - filled)}] {fraction,4:P0} {label}";
                _out.Write(text.Length > 100 ? text[..100] : text.PadRight(100));
                if (fraction >= 1)
                    _out.WriteLine();
                return;
            }
            int decile = (int)(fraction * 10);
            if (decile == _lastDecile)
                return;
            _lastDecile = decile;
            _out.WriteLine($"{title}: {fraction:P0} {label}".TrimEnd());
        }
    }
}
