using System.Net;
using System.Text.RegularExpressions;
using k8s.Models;
using Mis.Enforcer.Configuration;

namespace Mis.Cli.Tests.Deploy;

/// <summary>
/// deploy/kubernetes/, checked offline: every document against the Kubernetes API's models, and
/// every reference against what it points at (volumes, the ConfigMap, the claim, the socket, the
/// enforcer's metrics page, the `mis` subcommands and options, the image's layout).
/// </summary>
public sealed class DeployManifestTests
{
    private const string ConfigMapName = "mis-enforcer-config";
    private const string ConfigKey = "enforcer.toml";

    private static readonly KubernetesManifests Manifests = KubernetesManifests.Load();

    [Fact]
    public void Every_document_is_a_Kubernetes_object_of_a_known_kind_with_only_known_fields()
    {
        // Load() reads strictly and fails the class on an unknown field; here: the set is what the README describes.
        var kinds = Manifests.All.Select(m => $"{m.File}:{m.Object.Kind}").ToList();
        Assert.Equal(
            ["enforcer-configmap.yaml:ConfigMap", "enforcer-daemonset.yaml:DaemonSet", "namespace.yaml:Namespace",
             "sweep-indexed-job.yaml:PersistentVolumeClaim", "sweep-indexed-job.yaml:Job", "sweep-merge-job.yaml:Job"],
            kinds);
        Assert.All(Manifests.All, m => Assert.False(string.IsNullOrEmpty(m.Object.ApiVersion), $"{m}: no apiVersion"));
    }

    [Fact]
    public void A_misspelt_field_fails_the_strict_read()
    {
        string text = File.ReadAllText(Path.Combine(KubernetesManifests.Directory, "enforcer-daemonset.yaml"))
            .Replace("hostPID: true", "hostPid: true", StringComparison.Ordinal);
        var e = Assert.ThrowsAny<Exception>(() => k8s.KubernetesYaml.LoadAllFromString(text, typeMap: null, strict: true));
        Assert.Contains("hostPid", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Required_fields_are_set_and_names_are_valid()
    {
        var errors = Manifests.RequiredFieldErrors().Concat(Manifests.NameErrors()).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [Fact]
    public void Namespaced_objects_live_in_the_namespace_the_files_create()
    {
        var ns = Assert.Single(Manifests.OfType<V1Namespace>()).Object;
        Assert.Equal("privileged", ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]);
        Assert.All(Manifests.All.Where(m => m.Object is not V1Namespace),
            m => Assert.True(m.Object.Metadata.NamespaceProperty == ns.Metadata.Name, $"{m}: namespace {m.Object.Metadata.NamespaceProperty}"));
    }

    [Fact]
    public void Every_volume_mount_names_a_volume_and_every_volume_source_exists_in_the_files()
    {
        var configMaps = Manifests.OfType<V1ConfigMap>().Select(p => p.Object).ToDictionary(c => c.Metadata.Name);
        var claims = Manifests.OfType<V1PersistentVolumeClaim>().Select(p => p.Object.Metadata.Name).ToHashSet();
        foreach (var (m, template) in Manifests.PodTemplates())
        {
            var volumes = (template.Spec.Volumes ?? []).ToDictionary(v => v.Name);
            foreach (var c in template.Spec.Containers)
                foreach (var mount in c.VolumeMounts ?? [])
                    Assert.True(volumes.ContainsKey(mount.Name), $"{m}: container {c.Name} mounts volume {mount.Name}, which the pod does not have");
            foreach (var v in volumes.Values)
            {
                Assert.True(template.Spec.Containers.Any(c => c.VolumeMounts?.Any(x => x.Name == v.Name) == true), $"{m}: volume {v.Name} is mounted by no container");
                if (v.ConfigMap is { } source)
                {
                    Assert.True(configMaps.TryGetValue(source.Name, out var map), $"{m}: volume {v.Name} names ConfigMap {source.Name}, which no file defines");
                    foreach (var item in source.Items ?? [])
                        Assert.True(map.Data.ContainsKey(item.Key), $"{m}: ConfigMap {source.Name} has no key {item.Key}");
                }
                if (v.PersistentVolumeClaim is { } claim)
                    Assert.True(claims.Contains(claim.ClaimName), $"{m}: volume {v.Name} names claim {claim.ClaimName}, which no file defines");
            }
        }
    }

    [Fact]
    public void The_ConfigMap_is_a_configuration_MIS_accepts_and_serves_the_socket_and_metrics_the_DaemonSet_expects()
    {
        var config = EnforcerConfig();
        Assert.True(config.Grpc.Enabled, "mis enforcer refuses to start with [grpc] enabled = false");
        Assert.Equal("/run/mis/mis.sock", config.Grpc.UnixSocketPath);
        // The sweep pods connect as a non-root uid that no group of the node names: only 0666 lets them in.
        Assert.Equal("0666", config.Grpc.UnixSocketMode);
        Assert.True(config.Metrics.Enabled, "the probes and Prometheus read the metrics page");
        // The kubelet probes the pod's address: a loopback-only page would fail every probe.
        Assert.False(IPAddress.IsLoopback(IPAddress.Parse(config.Metrics.BindAddress)), $"metrics bind to {config.Metrics.BindAddress}");

        var daemonSet = Manifests.Single<V1DaemonSet>("mis-enforcer");
        var enforcer = Assert.Single(daemonSet.Spec.Template.Spec.Containers);
        // The command names the file where the ConfigMap's key is mounted.
        string configArgument = enforcer.Command[^1];
        var configVolume = daemonSet.Spec.Template.Spec.Volumes.Single(v => v.ConfigMap?.Name == ConfigMapName);
        var configMount = enforcer.VolumeMounts.Single(x => x.Name == configVolume.Name);
        Assert.Equal(Path.Combine(configMount.MountPath, ConfigKey), configArgument);

        // The socket's directory is the hostPath every client pod mounts at the same place.
        string socketDir = Path.GetDirectoryName(config.Grpc.UnixSocketPath)!;
        var socketVolume = HostPathMountedAt(daemonSet.Spec.Template.Spec, enforcer, socketDir);
        Assert.Equal("DirectoryOrCreate", socketVolume.HostPath.Type);
        var sweep = Manifests.Single<V1Job>("mis-sweep-feedback-modes");
        var shard = Assert.Single(sweep.Spec.Template.Spec.Containers);
        Assert.Equal(socketVolume.HostPath.Path, HostPathMountedAt(sweep.Spec.Template.Spec, shard, socketDir).HostPath.Path);
        Assert.Equal("unix:" + config.Grpc.UnixSocketPath, Env(shard, "MIS_ENFORCER"));
    }

    [Fact]
    public void Kubernetes_Slurm_and_systemd_reach_the_node_daemon_at_one_socket_with_one_configuration_file()
    {
        string root = RepoRoot.Find();
        string socket = EnforcerConfig().Grpc.UnixSocketPath;
        string nodeDaemon = File.ReadAllText(Path.Combine(root, "deploy", "slurm", "mis-node-daemon.sh"));
        string sweep = File.ReadAllText(Path.Combine(root, "deploy", "slurm", "mis-sweep.sbatch"));
        Assert.Equal(socket, ShellDefault(nodeDaemon, "MIS_SOCKET"));
        Assert.Equal("unix:" + socket, ShellDefault(sweep, "MIS_ENFORCER"));
        string configFile = ShellDefault(nodeDaemon, "MIS_CONFIG_FILE");
        Assert.Equal(configFile, Manifests.Single<V1DaemonSet>("mis-enforcer").Spec.Template.Spec.Containers[0].Command[^1]);

        // The systemd unit and its configuration (deploy/systemd/, the node daemon's own files): the
        // same socket, the same file, the same state lock, the unit the prolog starts.
        string systemd = Path.Combine(root, "deploy", "systemd");
        string unitFile = Path.Combine(systemd, ShellDefault(nodeDaemon, "MIS_UNIT"));
        string unitConfig = Path.Combine(systemd, Path.GetFileName(configFile));
        if (!File.Exists(unitFile) && !File.Exists(unitConfig))
            return; // Before the node daemon's unit exists there is nothing to agree with.
        var config = MisConfig.Load(unitConfig);
        Assert.Equal(socket, config.Grpc.UnixSocketPath);
        Assert.Equal(Path.Combine(config.Paths.StateDir, "enforcer.lock"), ShellDefault(nodeDaemon, "MIS_STATE_LOCK"));
        string execStart = File.ReadLines(unitFile).Single(l => l.StartsWith("ExecStart=", StringComparison.Ordinal));
        Assert.EndsWith(" enforcer " + configFile, execStart, StringComparison.Ordinal);
    }

    [Fact]
    public void Probes_and_scrape_annotations_point_at_the_metrics_page_the_enforcer_serves()
    {
        var config = EnforcerConfig();
        var template = Manifests.Single<V1DaemonSet>("mis-enforcer").Spec.Template;
        var enforcer = Assert.Single(template.Spec.Containers);
        foreach (var (name, probe) in new[] { ("liveness", enforcer.LivenessProbe), ("readiness", enforcer.ReadinessProbe) })
        {
            Assert.NotNull(probe);
            // EnforcerHost serves GET [metrics] endpoint and answers 404 to every other path: the page is the health check.
            Assert.True(probe.HttpGet is not null, $"{name} probe: expected an httpGet on the metrics page");
            Assert.Equal(config.Metrics.Endpoint, probe.HttpGet.Path);
            Assert.Equal(config.Metrics.Port, ResolvePort(enforcer, probe.HttpGet.Port));
        }
        var annotations = template.Metadata.Annotations;
        Assert.Equal("true", annotations["prometheus.io/scrape"]);
        Assert.Equal(config.Metrics.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), annotations["prometheus.io/port"]);
        Assert.Equal(config.Metrics.Endpoint, annotations["prometheus.io/path"]);
    }

    [Fact]
    public void The_enforcer_runs_privileged_in_the_host_PID_namespace_with_the_host_cgroups()
    {
        var daemonSet = Manifests.Single<V1DaemonSet>("mis-enforcer");
        var spec = daemonSet.Spec.Template.Spec;
        var enforcer = Assert.Single(spec.Containers);
        Assert.True(spec.HostPID);
        Assert.True(enforcer.SecurityContext.Privileged);
        Assert.Equal("/sys/fs/cgroup", HostPathMountedAt(spec, enforcer, "/sys/fs/cgroup").HostPath.Path);
        Assert.Equal(EnforcerConfig().Paths.StateDir, enforcer.VolumeMounts.Single(x => x.Name == "state").MountPath);
        // The selector must select the template's pods, or the API server refuses the DaemonSet.
        Assert.All(daemonSet.Spec.Selector.MatchLabels, l => Assert.Equal(l.Value, daemonSet.Spec.Template.Metadata.Labels[l.Key]));
        Assert.True(spec.RestartPolicy is null or "Always", "a DaemonSet's pods restart Always");
    }

    [Fact]
    public void The_sweep_is_an_Indexed_Job_of_N_unprivileged_shards_on_one_shared_volume()
    {
        var job = Manifests.Single<V1Job>("mis-sweep-feedback-modes");
        var spec = job.Spec;
        Assert.Equal("Indexed", spec.CompletionMode);
        Assert.True(spec.Completions is > 1, "an Indexed Job needs completions");
        Assert.True(spec.Parallelism is > 0 && spec.Parallelism <= spec.Completions);
        var pod = spec.Template.Spec;
        // backoffLimitPerIndex is allowed only with restartPolicy Never.
        Assert.Equal("Never", pod.RestartPolicy);
        var shard = Assert.Single(pod.Containers);
        Assert.Equal(spec.Completions.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), Env(shard, "MIS_SHARD_COUNT"));
        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.True(pod.SecurityContext.RunAsUser is > 0);
        Assert.True(shard.SecurityContext?.Privileged is null or false);
        Assert.False(shard.SecurityContext?.AllowPrivilegeEscalation ?? true);

        var merge = Manifests.Single<V1Job>("mis-sweep-feedback-modes-merge");
        Assert.Equal(pod.SecurityContext.RunAsUser, merge.Spec.Template.Spec.SecurityContext.RunAsUser);
        var runs = RunDirectory(job);
        Assert.Equal(runs, RunDirectory(merge));
        // Both mount the same claim where the run directory lives.
        Assert.Equal(ClaimMountedAbove(job, runs), ClaimMountedAbove(merge, runs));
        Assert.Equal(spec.Template.Spec.Volumes.Single(v => v.PersistentVolumeClaim is not null).PersistentVolumeClaim.ClaimName,
            Assert.Single(Manifests.OfType<V1PersistentVolumeClaim>()).Object.Metadata.Name);
        Assert.Contains("ReadWriteMany", Manifests.Single<V1PersistentVolumeClaim>("mis-runs").Spec.AccessModes);
    }

    [Fact]
    public void Every_container_command_is_a_mis_command_line_the_CLI_accepts_in_the_image()
    {
        Assert.Contains("gym", CliCommandLine.TopLevel);
        var dockerfile = Dockerfile();
        string workDir = Regex.Match(dockerfile, @"^WORKDIR\s+(\S+)", RegexOptions.Multiline).Groups[1].Value;
        Assert.Equal("/opt/mis", workDir);
        Assert.Contains(">/usr/local/bin/mis", dockerfile, StringComparison.Ordinal);
        var reached = new List<string>();
        foreach (var (m, template) in Manifests.PodTemplates())
            foreach (var c in template.Spec.Containers)
            {
                Assert.Equal("mis:dev", c.Image);
                Assert.True(c.Command is { Count: > 1 } && c.Command[0] == "mis", $"{m}: container {c.Name} runs {string.Join(' ', c.Command ?? [])}, not mis");
                Assert.Null(c.Args);
                Assert.NotNull(c.Command);
                var args = c.Command.Skip(1).ToList();
                var (errors, command) = CliCommandLine.Parse(args);
                Assert.True(errors.Count == 0, $"{m}: `{string.Join(' ', c.Command)}`: {string.Join("; ", errors)}");
                reached.Add(command);
                // Relative paths are relative to the working directory: the repository in the image.
                Assert.True(c.WorkingDir is null || c.WorkingDir == workDir, $"{m}: workingDir {c.WorkingDir}");
                foreach (string arg in args.Where(a => a.EndsWith(".toml", StringComparison.Ordinal) && !a.StartsWith('/')))
                    Assert.True(File.Exists(Path.Combine(RepoRoot.Find(), arg)), $"{m}: {arg} is not in the repository (the image's {workDir})");
            }
        Assert.Equal(["enforcer", "gym run", "report"], reached.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_Dockerfile_builds_from_Debian_12_with_the_pinned_SDK()
    {
        var dockerfile = Dockerfile();
        Assert.Matches(@"(?m)^FROM debian:12\s*$", dockerfile);
        Assert.Contains("--jsonfile /tmp/global.json", dockerfile, StringComparison.Ordinal);
        Assert.Contains("useradd --uid " + Manifests.Single<V1Job>("mis-sweep-feedback-modes").Spec.Template.Spec.SecurityContext.RunAsUser, dockerfile, StringComparison.Ordinal);
    }

    private static MisConfig EnforcerConfig()
    {
        var map = Manifests.Single<V1ConfigMap>(ConfigMapName);
        Assert.True(map.Data.TryGetValue(ConfigKey, out string? text), $"ConfigMap {ConfigMapName} has no {ConfigKey}");
        // MIS's own loader: an unknown key or a bad value is a ConfigException naming line and key.
        return MisConfig.Parse(text, $"enforcer-configmap.yaml:{ConfigKey}");
    }

    // VAR's default in a script's VAR=${VAR:-default} line.
    private static string ShellDefault(string script, string variable)
    {
        var match = Regex.Match(script, $@"\b{variable}=\$\{{{variable}:-([^}}]+)\}}");
        Assert.True(match.Success, $"no {variable}=${{{variable}:-...}} line");
        return match.Groups[1].Value;
    }

    private static string Dockerfile() => File.ReadAllText(Path.Combine(RepoRoot.Find(), "deploy", "container", "Dockerfile"));

    private static string? Env(V1Container container, string name) => container.Env?.SingleOrDefault(e => e.Name == name)?.Value;

    private static V1Volume HostPathMountedAt(V1PodSpec pod, V1Container container, string mountPath)
    {
        var mount = container.VolumeMounts?.SingleOrDefault(x => x.MountPath == mountPath);
        Assert.True(mount is not null, $"container {container.Name} mounts nothing at {mountPath}");
        var volume = pod.Volumes.Single(v => v.Name == mount.Name);
        Assert.True(volume.HostPath is not null, $"volume {volume.Name} at {mountPath} is not a hostPath");
        return volume;
    }

    private static int ResolvePort(V1Container container, IntOrString port) =>
        int.TryParse(port.Value, out int number) ? number
        : container.Ports?.SingleOrDefault(p => p.Name == port.Value)?.ContainerPort
          ?? throw new InvalidDataException($"container {container.Name} has no port named {port.Value}");

    private static string RunDirectory(V1Job job)
    {
        var command = Assert.Single(job.Spec.Template.Spec.Containers).Command;
        int outFlag = command.IndexOf("--out");
        return outFlag >= 0 ? command[outFlag + 1] : command[^1];
    }

    private static string ClaimMountedAbove(V1Job job, string path)
    {
        var pod = job.Spec.Template.Spec;
        var mount = Assert.Single(pod.Containers).VolumeMounts.Single(x => path.StartsWith(x.MountPath.TrimEnd('/') + "/", StringComparison.Ordinal));
        return pod.Volumes.Single(v => v.Name == mount.Name).PersistentVolumeClaim?.ClaimName
               ?? throw new InvalidDataException($"{job.Metadata.Name}: {path} is not on a persistent volume claim");
    }
}
