using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Mis.Enforcer.Configuration;

namespace Mis.Server.Hosting;

/// <summary>Structured logs on stderr at <c>[logging] level</c>, as text or JSON lines (<c>[logging] format</c>).</summary>
public static class LoggingSetup
{
    /// <summary>A logger factory configured from <c>[logging]</c>.</summary>
    public static ILoggerFactory Create(LoggingConfig logging) => LoggerFactory.Create(builder => Configure(builder, logging));

    internal static void Configure(ILoggingBuilder builder, LoggingConfig logging)
    {
        var level = Level(logging.Level);
        builder.SetMinimumLevel(level);
        // ASP.NET Core and gRPC narrate every request at Information; only their warnings matter
        // here unless the operator asked for debug output.
        var frameworkLevel = level <= LogLevel.Debug ? level : (LogLevel)Math.Max((int)level, (int)LogLevel.Warning);
        builder.AddFilter("Microsoft", frameworkLevel);
        builder.AddFilter("Grpc", frameworkLevel);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace); // stdout stays free
        if (logging.Format == "json")
            builder.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        else
            builder.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            });
    }

    internal static LogLevel Level(string name) => name switch
    {
        "trace" => LogLevel.Trace,
        "debug" => LogLevel.Debug,
        "warning" => LogLevel.Warning,
        "error" => LogLevel.Error,
        "critical" => LogLevel.Critical,
        "none" => LogLevel.None,
        _ => LogLevel.Information,
    };
}
