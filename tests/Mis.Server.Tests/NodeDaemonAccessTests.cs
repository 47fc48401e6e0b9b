using System.Net.Sockets;
using System.Text.Json.Nodes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Mis.Enforcer.Configuration;
using Mis.Native;
using Mis.Policy.V1;
using Mis.Server.Engine;
using Mis.Server.Hosting;
using Mis.Testing;

namespace Mis.Server.Tests;

/// <summary>
/// The enforcer as a node daemon: a Unix socket every local user may connect to, each caller
/// authorized by its SO_PEERCRED. Two users made for the test call it through the independent
/// Python client under setpriv, so the credentials the enforcer reads are really theirs.
/// </summary>
public sealed class NodeDaemonAccessTests
{
    private const string Denied = "PERMISSION_DENIED";

    [Fact]
    public async Task A_user_cannot_touch_another_users_workload_run_as_anyone_else_or_escape_its_policy()
    {
        HostRequirements.Root();
        using var users = new LocalUsers();
        var alice = users.AddUser("a");
        var bob = users.AddUser("b");
        var admins = users.AddGroup("adm");
        string dir = Directory.CreateTempSubdirectory("mis-node-").FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0x1ED); // 0755: the users reach the socket
        string socket = Path.Combine(dir, "mis.sock");
        string allowedPolicy = WritePolicy(dir, "user.toml", "/etc/hostname");
        string otherPolicy = WritePolicy(dir, "lenient.toml", "/nonexistent");
        try
        {
            await using var mis = await TestEnforcer.StartAsync(c => c with
            {
                Grpc = c.Grpc with { UnixSocketPath = socket, UnixSocketMode = "0666" },
                Access = new AccessConfig { AdminGroup = admins.Name, UserPolicyFiles = [allowedPolicy] },
            });
            Assert.Equal((UnixFileMode)0x1B6, File.GetUnixFileMode(socket)); // 0666

            // Alice starts a workload without naming a user: it runs as Alice, not as nobody.
            var aliceRun = Single(users.CallAs(alice.Uid, alice.Gid, socket, [Call("RunWorkload", new { command = "sleep", args = new[] { "30" } })]));
            Assert.Equal("OK", Code(aliceRun));
            ulong aliceCgroup = ulong.Parse(aliceRun["response"]!["cgroup_id"]!.ToString());
            int alicePid = (int)aliceRun["response"]!["pid"]!;
            await TestEnforcer.WaitAsleepAsync(alicePid);
            Assert.Equal(alice.Uid, ProcessUid(alicePid));
            using var rootChannel = UnixChannel(socket);
            var root = new PolicyService.PolicyServiceClient(rootChannel);
            var aliceInfo = await root.GetCgroupAsync(new GetCgroupRequest { CgroupId = aliceCgroup }, cancellationToken: Ct);

            // Bob: none of Alice's workload, none of root's rights, no policy the node does not offer him.
            var target = new { cgroup_id = aliceCgroup.ToString() };
            var bobResults = users.CallAs(bob.Uid, bob.Gid, socket,
            [
                Call("ListCgroups", new { include_exited = true }),
                Call("GetCgroup", target),
                Call("KillProcess", target),
                Call("SetDefcon", new { cgroup_id = aliceCgroup.ToString(), level = 2 }),
                Call("SetLearningMode", new { cgroup_id = aliceCgroup.ToString(), enabled = true }),
                Call("WatchEvents", target, timeout: 5),
                Call("RunWorkload", new { command = "id", as_root = true }),
                Call("RunWorkload", new { command = "id", user = "root" }),
                Call("RunWorkload", new { command = "id", user = alice.Name }),
                Call("RunWorkload", new { command = "id", policy_file = otherPolicy }),
                Call("RunWorkload", new { command = "id", policy_file = Path.Combine(dir, "sub", "..", "lenient.toml") }),
                Call("AddRule", new { inode = "1", dev_id = "1", action = 0 }),
                Call("RemoveRule", new { inode = "1", dev_id = "1" }),
                Call("ReloadPolicy", new { }),
                Call("GetStats", new { }),
            ]);
            Assert.Empty(bobResults[0]!["response"]!["cgroups"]?.AsArray() ?? []);
            foreach (var refused in bobResults.Skip(1).Take(13))
                Assert.True(Code(refused) == Denied, $"{refused!["rpc"]}: expected {Denied}, got {Code(refused)} {refused["detail"]}");
            Assert.Contains($"uid {bob.Uid} ({bob.Name})", (string)bobResults[1]!["detail"]!);
            Assert.Contains("not as_root", (string)bobResults[6]!["detail"]!);
            Assert.Contains("user_policy_files", (string)bobResults[9]!["detail"]!);
            Assert.Contains("runtime rules", (string)bobResults[11]!["detail"]!);
            Assert.Equal("OK", Code(bobResults[14]));

            // Alice's workload is untouched by all that.
            var after = await root.GetCgroupAsync(new GetCgroupRequest { CgroupId = aliceCgroup }, cancellationToken: Ct);
            Assert.Equal(WorkloadState.Running, after.State);
            Assert.Equal(aliceInfo.Defcon, after.Defcon);
            Assert.False(after.Learning);
            Assert.Equal((long)alice.Uid, after.OwnerUid);
            Assert.Equal(alice.Name, after.User);

            // Bob under the policy the node allows him, as himself; he controls his own workload.
            var bobRun = Single(users.CallAs(bob.Uid, bob.Gid, socket,
                [Call("RunWorkload", new { command = "sleep", args = new[] { "30" }, user = bob.Name, policy_file = allowedPolicy })]));
            Assert.Equal("OK", Code(bobRun));
            ulong bobCgroup = ulong.Parse(bobRun["response"]!["cgroup_id"]!.ToString());
            int bobPid = (int)bobRun["response"]!["pid"]!;
            Assert.Equal("user", (string)bobRun["response"]!["policy"]!);
            await TestEnforcer.WaitAsleepAsync(bobPid);
            Assert.Equal(bob.Uid, ProcessUid(bobPid));

            // Watching "every cgroup", Bob sees his own workload's events and never Alice's.
            var watch = Task.Run(() => users.CallAs(bob.Uid, bob.Gid, socket, [Call("WatchEvents", new { }, timeout: 4)]), Ct);
            await Task.Delay(TimeSpan.FromSeconds(2), Ct); // the client is up and subscribed
            await root.SetDefconAsync(new SetDefconRequest { CgroupId = aliceCgroup, Level = 4 }, cancellationToken: Ct);
            await root.SetDefconAsync(new SetDefconRequest { CgroupId = bobCgroup, Level = 4 }, cancellationToken: Ct);
            var seen = Single(await watch)["events"]!.AsArray().Select(e => ulong.Parse(e!["cgroup_id"]!.ToString())).ToList();
            Assert.Contains(bobCgroup, seen);
            Assert.DoesNotContain(aliceCgroup, seen);

            var bobOwn = users.CallAs(bob.Uid, bob.Gid, socket,
            [
                Call("ListCgroups", new { }),
                Call("SetDefcon", new { cgroup_id = bobCgroup.ToString(), level = 3 }),
                Call("KillProcess", new { cgroup_id = bobCgroup.ToString() }),
            ]);
            Assert.Equal([bobCgroup], bobOwn[0]!["response"]!["cgroups"]!.AsArray().Select(c => ulong.Parse(c!["cgroup_id"]!.ToString())));
            Assert.All(bobOwn, r => Assert.Equal("OK", Code(r)));

            // Bob in the admin group may do what root may.
            string file = mis.WorldReadableFile("admin-rule");
            var id = FileIdentity.Of(file)!.Value;
            var asAdmin = users.CallAs(bob.Uid, bob.Gid, socket,
            [
                Call("ListCgroups", new { }),
                Call("AddRule", new { inode = id.Inode.ToString(), dev_id = id.Device.ToString(), action = 1, ttl_secs = "30" }),
                Call("RemoveRule", new { inode = id.Inode.ToString(), dev_id = id.Device.ToString() }),
            ], admins.Gid);
            Assert.All(asAdmin, r => Assert.Equal("OK", Code(r)));
            Assert.Contains(aliceCgroup, asAdmin[0]!["response"]!["cgroups"]!.AsArray().Select(c => ulong.Parse(c!["cgroup_id"]!.ToString())));

            // Root on the socket may do everything; TCP, with the socket open to users and no
            // mutual TLS, is refused ([access] tcp_callers = "auto").
            await root.KillProcessAsync(new KillProcessRequest { CgroupId = aliceCgroup }, cancellationToken: Ct);
            var tcp = await TestEnforcer.FailsAsync(StatusCode.PermissionDenied,
                () => mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct).ResponseAsync);
            Assert.Contains("tcp_callers", tcp.Status.Detail);

            // Every refusal has its audit line naming the uid.
            var audit = File.ReadAllLines(mis.AuditPath).Select(l => JsonNode.Parse(l)!).ToList();
            var bobDenied = audit.Where(l => (uint?)l["uid"] == bob.Uid && (string?)l["status"] == Denied).ToList();
            Assert.Equal(13, bobDenied.Count);
            Assert.All(bobDenied, l => Assert.Equal("user", (string?)l["role"]));
            Assert.Contains(audit, l => (uint?)l["uid"] == bob.Uid && (string?)l["method"] == "AddRule" && (string?)l["role"] == "admin" && (string?)l["status"] == "OK");
            Assert.Contains(audit, l => (uint?)l["uid"] == 0 && (string?)l["method"] == "KillProcess" && (string?)l["status"] == "OK");
            Assert.Contains(audit, l => l["uid"] is null && (string?)l["method"] == "GetStats" && (string?)l["status"] == Denied);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_workload_calling_the_socket_with_its_owners_uid_cannot_steer_the_enforcer()
    {
        HostRequirements.Root();
        using var users = new LocalUsers();
        var bob = users.AddUser("w");
        string dir = Directory.CreateTempSubdirectory("mis-node-self-").FullName;
        File.SetUnixFileMode(dir, (UnixFileMode)0x1ED); // 0755
        string socket = Path.Combine(dir, "mis.sock");
        // A policy the node offers its users that lets a workload connect to the socket: the node's
        // own policy does not (a Unix socket no rule names is denied), so that is the first wall.
        string reachable = Path.Combine(dir, "reachable.toml");
        File.WriteAllText(reachable, $"[[unix]]\npath = \"{socket}\"\naction = \"allow\"\n");
        string outDir = Path.Combine(dir, "out");
        Directory.CreateDirectory(outDir);
        LocalUsers.Run("/usr/bin/chown", $"{bob.Uid}:{bob.Gid}", outDir);
        try
        {
            await using var mis = await TestEnforcer.StartAsync(c => c with
            {
                Grpc = c.Grpc with { UnixSocketPath = socket, UnixSocketMode = "0666" },
                Access = new AccessConfig { UserPolicyFiles = [reachable] },
            });
            // What an agent would try from inside its workload: its uid is its owner's, so by uid
            // alone these would pass (GetStats and ListCgroups are every user's, a second workload
            // its owner's).
            File.WriteAllText(Path.Combine(outDir, "calls.json"), System.Text.Json.JsonSerializer.Serialize(new[]
            {
                Call("GetStats", new { }),
                Call("ListCgroups", new { }),
                Call("RunWorkload", new { command = "sleep", args = new[] { "1" } }),
            }));

            // Under the node's policy the connect itself is denied.
            var first = await FromInsideAsync(users, bob, socket, outDir, policyFile: null);
            Assert.All(first, r => Assert.Contains("Operation not permitted", (string)r!["detail"]!));

            // Under a policy that allows it, the enforcer still refuses: the caller is in a MIS cgroup.
            var second = await FromInsideAsync(users, bob, socket, outDir, reachable);
            Assert.Equal(3, second.Count);
            foreach (var refused in second)
            {
                Assert.True(Code(refused) == Denied, $"{refused!["rpc"]}: expected {Denied}, got {Code(refused)} {refused["detail"]}");
                Assert.Contains("a workload may not steer its own enforcement", (string)refused["detail"]!);
            }
            // Bob himself, outside any MIS cgroup, is served.
            Assert.Equal("OK", Code(Single(users.CallAs(bob.Uid, bob.Gid, socket, [Call("GetStats", new { })]))));
            var audit = File.ReadAllLines(mis.AuditPath).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(3, audit.Count(l => (uint?)l["uid"] == bob.Uid && (string?)l["status"] == Denied));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_workload_calling_over_tcp_cannot_steer_the_enforcer_either()
    {
        HostRequirements.Root();
        using var users = new LocalUsers();
        string outDir = Directory.CreateTempSubdirectory("mis-node-tcp-").FullName;
        File.SetUnixFileMode(outDir, (UnixFileMode)0x1FF); // 0777: the workload runs as nobody
        try
        {
            // A node policy that lets workloads reach loopback TCP, the enforcer's own port among
            // them; TCP callers are admins here (no Unix socket open to users): the wall is the
            // enforcer's, which finds the connecting socket among the workload's processes.
            await using var mis = await TestEnforcer.StartAsync(policy: "[[network]]\naddress = \"127.0.0.1\"\nport = 0\nprotocol = \"tcp\"\naction = \"allow\"\n");
            int port = mis.Host.GrpcTcpAddress!.Port;
            File.WriteAllText(Path.Combine(outDir, "calls.json"), System.Text.Json.JsonSerializer.Serialize(new[]
            {
                Call("GetStats", new { }),
                Call("ListCgroups", new { }),
                Call("RunWorkload", new { command = "sleep", args = new[] { "1" } }),
            }));
            var refused = await ClientInWorkloadAsync(users, $"127.0.0.1:{port}", outDir, script => mis.RunAsync("/bin/sh", "-c", script));
            Assert.Equal(3, refused.Count);
            foreach (var r in refused)
            {
                Assert.True(Code(r) == Denied, $"{r!["rpc"]}: expected {Denied}, got {Code(r)} {r["detail"]}");
                Assert.Contains("calling over TCP", (string)r["detail"]!);
                Assert.Contains("a workload may not steer its own enforcement", (string)r["detail"]!);
            }
            // The test process, outside any MIS cgroup, is still served over the same port.
            await mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct);
        }
        finally
        {
            Directory.Delete(outDir, recursive: true);
        }
    }

    // Runs the access client as a workload of Bob's (under policyFile, or the node's policy) with
    // the calls in outDir/calls.json; returns its results.
    private static Task<JsonArray> FromInsideAsync(LocalUsers users, (string Name, uint Uid, uint Gid) bob, string socket, string outDir, string? policyFile) =>
        ClientInWorkloadAsync(users, $"unix:{socket}", outDir, script =>
        {
            object request = policyFile is null
                ? new { command = "/bin/sh", args = new[] { "-c", script } }
                : new { command = "/bin/sh", args = new[] { "-c", script }, policy_file = policyFile };
            var run = Single(users.CallAs(bob.Uid, bob.Gid, socket, [Call("RunWorkload", request)]));
            Assert.Equal("OK", Code(run));
            return Task.CompletedTask;
        });

    // Runs the access client against target with the calls in outDir/calls.json, as the workload
    // that start makes of a shell script; returns its results.
    private static async Task<JsonArray> ClientInWorkloadAsync(LocalUsers users, string target, string outDir, Func<string, Task> start)
    {
        string result = Path.Combine(outDir, "result.json");
        File.Delete(result);
        await start($"{LocalUsers.Python} {users.ClientDir}/access_client.py {users.ClientDir} {target} \"$(cat {outDir}/calls.json)\" " +
                    $"> {result}.part 2>&1; mv {result}.part {result}");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!File.Exists(result) && DateTime.UtcNow < deadline)
            await Task.Delay(200, Ct);
        Assert.True(File.Exists(result), "the workload wrote no result within 60 s");
        return JsonNode.Parse(File.ReadAllText(result).Trim().Split('\n')[^1])!.AsArray();
    }

    [Fact]
    public async Task A_missing_socket_group_or_a_missing_or_broken_user_policy_is_a_configuration_error()
    {
        string dir = Directory.CreateTempSubdirectory("mis-node-config-").FullName;
        try
        {
            string config = Path.Combine(dir, "enforcer.toml");
            File.WriteAllText(config, $"""
                [grpc]
                enabled = true
                unix_socket_path = "{dir}/mis.sock"
                unix_socket_mode = "0660"
                unix_socket_group = "no-such-group-mis"
                [access]
                user_policy_files = ["missing.toml"]
                """);
            var e = await Assert.ThrowsAsync<EnforcerStartException>(() => EnforcerHost.StartAsync(
                new EngineOptions { Config = MisConfig.Load(config), ConfigPath = config, ConfigDirectory = dir }, NullLoggerFactory.Instance, Ct));
            Assert.True(e.IsConfiguration);
            Assert.Contains($"{config}:7:21: access.user_policy_files: \"{dir}/missing.toml\" does not exist", e.Message);

            File.WriteAllText(Path.Combine(dir, "missing.toml"), "[[file]]\npath = \"/x\"\nops = [\"fly\"]\naction = \"deny\"\n");
            e = await Assert.ThrowsAsync<EnforcerStartException>(() => EnforcerHost.StartAsync(
                new EngineOptions { Config = MisConfig.Load(config), ConfigPath = config, ConfigDirectory = dir }, NullLoggerFactory.Instance, Ct));
            Assert.True(e.IsConfiguration);
            Assert.Contains($"{dir}/missing.toml:3:", e.Message); // a user policy that does not parse

            File.WriteAllText(Path.Combine(dir, "missing.toml"), "");
            e = await Assert.ThrowsAsync<EnforcerStartException>(() => EnforcerHost.StartAsync(
                new EngineOptions { Config = MisConfig.Load(config), ConfigPath = config, ConfigDirectory = dir }, NullLoggerFactory.Instance, Ct));
            Assert.Contains($"{config}:5:21: grpc.unix_socket_group: no group \"no-such-group-mis\"", e.Message);
            Assert.False(File.Exists(Path.Combine(dir, "mis.sock")), "nothing was set up");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_group_socket_belongs_to_its_group_and_is_0660()
    {
        HostRequirements.Root();
        using var users = new LocalUsers();
        var members = users.AddGroup("sock");
        string dir = Directory.CreateTempSubdirectory("mis-node-group-").FullName;
        string socket = Path.Combine(dir, "mis.sock");
        try
        {
            await using var mis = await TestEnforcer.StartAsync(c => c with
            {
                Grpc = c.Grpc with { UnixSocketPath = socket, UnixSocketMode = "0660", UnixSocketGroup = members.Name },
            });
            Assert.Equal((UnixFileMode)0x1B0, File.GetUnixFileMode(socket)); // 0660
            Assert.Equal(members.Gid, FileGroup(socket));
            // The TCP listener stays an admin's here only under mutual TLS: the socket is open to a group.
            await TestEnforcer.FailsAsync(StatusCode.PermissionDenied, () => mis.Client.GetStatsAsync(new GetStatsRequest(), cancellationToken: Ct).ResponseAsync);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    internal static object Call(string rpc, object request, double timeout = 30) => new Dictionary<string, object>
    {
        ["rpc"] = rpc,
        ["request"] = request,
        ["timeout"] = timeout,
    };

    internal static string Code(JsonNode? result) => (string)result!["code"]!;

    private static JsonNode Single(JsonArray results) => Assert.Single(results)!;

    internal static GrpcChannel UnixChannel(string socket) => GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancel) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancel);
                return new NetworkStream(s, ownsSocket: true);
            },
        },
    });

    private static string WritePolicy(string dir, string name, string deniedPath)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, $"[[file]]\npath = \"{deniedPath}\"\naction = \"deny\"\n");
        return path;
    }

    private static uint ProcessUid(int pid) =>
        uint.Parse(File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);

    private static uint FileGroup(string path) => uint.Parse(LocalUsers.Run("/usr/bin/stat", "-c", "%g", path).Output.Trim());
}
