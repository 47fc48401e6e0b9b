using Mis.Testing;

namespace Mis.Server.Tests;

// `mis enforcer` with [policy] anomaly_model: the CLI hands the server Mis.Anomaly's loader.
public sealed partial class EnforcerProcessTests
{
    [Fact]
    public void An_unloadable_anomaly_model_is_refused_with_exit_2_naming_file_line_and_key()
    {
        HostRequirements.Root();
        string config = Path.Combine(_dir, "config.toml");
        string Config(string model) =>
            $"[paths]\nstate_dir = \"{_dir}/state\"\n[policy]\nanomaly_model = \"{model}\"\n[grpc]\nenabled = true\nport = {FreePort()}\n";

        // Relative to the configuration file, like policy_files.
        File.WriteAllText(config, Config("missing.model"));
        var (exit, _, stderr) = RunToEnd("enforcer", config);
        Assert.Equal(2, exit);
        Assert.Contains($"{config}:4:17: policy.anomaly_model: cannot load the anomaly model \"{_dir}/missing.model\"", stderr);
        Assert.Contains("no such model file", stderr);

        File.WriteAllText(Path.Combine(_dir, "garbage.model"), "not a model\n");
        File.WriteAllText(config, Config("garbage.model"));
        (exit, _, stderr) = RunToEnd("enforcer", config);
        Assert.Equal(2, exit);
        Assert.Contains($"{config}:4:17: policy.anomaly_model", stderr);
        Assert.Contains("not a MIS anomaly model", stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "state")), "nothing was set up");
    }
}
