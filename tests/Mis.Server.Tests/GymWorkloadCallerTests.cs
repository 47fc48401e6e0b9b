using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;
using Mis.Gym.Envs;
using Mis.Gym.Server;
using Mis.Native;
using Mis.Testing;
using Wire = Mis.Gym.V1;

namespace Mis.Server.Tests;

/// <summary>
/// <c>mis gym serve</c> refuses every call a MIS-managed workload makes: a command scenario's agent
/// program must not reach the server that runs its episode (reset, close or make environments).
/// </summary>
public sealed class GymWorkloadCallerTests
{
    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task A_caller_inside_the_workload_tree_is_refused_and_one_outside_is_served(string transport)
    {
        string own = CgroupV2.PathOf(Environment.ProcessId) ?? throw new InvalidOperationException("no cgroup v2 here");
        string dir = Directory.CreateTempSubdirectory("mis-gym-callers-").FullName;
        try
        {
            // This process, were its cgroup the workload tree, is a workload.
            var refused = await Assert.ThrowsAsync<RpcException>(() => ListAsync(transport, own, dir));
            Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
            Assert.Contains("a workload may not steer its own enforcement", refused.Status.Detail);
            Assert.Contains(transport == "tcp" ? "calling over TCP" : $"(cgroup {own})", refused.Status.Detail);

            Assert.NotEmpty(await ListAsync(transport, "/no-such-tree-mis", dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task An_agent_program_calling_the_server_from_its_episode_is_refused()
    {
        HostRequirements.Root();
        HostRequirements.That(File.Exists(Python), $"{Python} is needed (./mis installs python3-grpcio)");
        string scenarios = Directory.CreateTempSubdirectory("mis-gym-agent-calls-").FullName;
        File.SetUnixFileMode(scenarios, (UnixFileMode)0b111_101_101);
        try
        {
            await using var gym = await GymTestServer.StartAsync(o => o with
            {
                ScenarioDirectory = scenarios,
                AllowedBackends = [MisGym.Sim, MisGym.Kernel],
            });
            // The program calls ListScenarios (an empty message, so no generated code is needed) on
            // the server that runs it, and prints what it got.
            File.WriteAllText(Path.Combine(scenarios, "caller.toml"), $$"""
                [scenario]
                name = "caller"
                [policy]
                default = "allow"
                [workload]
                command = ["{{Python}}", "-c", "import grpc, sys\ntry:\n    grpc.insecure_channel(sys.argv[1]).unary_unary('/mis.gym.v1.GymService/ListScenarios')(b'', timeout=20)\n    print('served')\nexcept grpc.RpcError as e:\n    print(e.code().name, e.details())\n", "{{gym.Target}}"]
                timeout_ms = 30000
                step_ms = 200
                """);

            var made = await gym.MakeAsync(scenario: "caller", backend: "kernel");
            await gym.ResetAsync(made.EnvId);
            Wire.StepResponse step;
            int steps = 0;
            do
                step = await gym.StepAsync(made.EnvId, 0);
            while (!step.Terminated && !step.Truncated && ++steps < 300);

            Assert.True(step.Terminated, $"the program did not end: {step.Info}");
            string stdout = step.Info.Extra.Fields["stdout"].StringValue;
            Assert.Contains("PERMISSION_DENIED", stdout);
            Assert.Contains("a workload may not steer its own enforcement", stdout);
            // The test, outside any MIS cgroup, is still served on the same port.
            await gym.Client.ListScenariosAsync(new Wire.ListScenariosRequest(), cancellationToken: Ct);
        }
        finally
        {
            Directory.Delete(scenarios, recursive: true);
        }
    }

    private const string Python = "/usr/bin/python3";

    // Starts a server refusing workloadTree's processes on transport, and lists its scenarios from this process.
    private static async Task<IReadOnlyList<Wire.ScenarioEntry>> ListAsync(string transport, string workloadTree, string dir)
    {
        string socket = Path.Combine(dir, "gym.sock");
        await using var host = await GymHost.StartAsync(new GymServerOptions
        {
            Listen = GymListenAddress.Parse(transport == "tcp" ? "127.0.0.1:0" : "unix:" + socket),
            ScenarioDirectory = GymTestServer.ShippedScenarios,
            WorkloadTree = workloadTree,
        }, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, Ct);
        using var channel = transport == "tcp"
            ? GrpcChannel.ForAddress(host.TcpAddress!)
            : GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
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
        var client = new Wire.GymService.GymServiceClient(channel);
        return (await client.ListScenariosAsync(new Wire.ListScenariosRequest(), cancellationToken: Ct)).Scenarios;
    }
}
