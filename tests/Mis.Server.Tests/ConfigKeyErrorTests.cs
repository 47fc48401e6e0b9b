namespace Mis.Server.Tests;

/// <summary>Errors found when a configuration value is put to use point at the key in the file (file:line:column).</summary>
public sealed class ConfigKeyErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-server-unit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("[grpc]\nenabled = true\n[policy]\nanomaly_model = \"m.model\"\n", 4, 17)]
    [InlineData("policy.anomaly_model = \"m.model\"\n", 1, 24)]
    [InlineData("policy = { anomaly_model = \"m.model\" }\n", 1, 28)]
    [InlineData("[grpc]\nenabled = true\n", 0, 0)] // not in the file (set in code): file and key only
    public void An_error_found_when_a_value_is_put_to_use_points_at_the_key_in_the_file(string text, int line, int column)
    {
        string path = Path.Combine(_dir, "config.toml");
        File.WriteAllText(path, text);

        var e = Mis.Enforcer.Configuration.ConfigBinder.ErrorAtKey(path, "policy.anomaly_model", "cannot load");

        Assert.Equal((line, column, "policy.anomaly_model"), (e.Line, e.Column, e.Key));
        Assert.Equal(line > 0 ? $"{path}:{line}:{column}: policy.anomaly_model: cannot load" : $"{path}: policy.anomaly_model: cannot load", e.Message);
    }
}
