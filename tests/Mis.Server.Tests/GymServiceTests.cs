using Grpc.Core;
using Mis.Gym;
using Mis.Gym.Envs;
using Mis.Gym.Spaces;
using Mis.Gym.Server;
using Wire = Mis.Gym.V1;

namespace Mis.Server.Tests;

/// <summary>mis.gym.v1.GymService through the C# client: every RPC, and every error status with its reason.</summary>
public sealed class GymServiceTests : IDisposable
{
    private const string Scenario = "data-shortcut";
    // data-shortcut's actions, by index.
    private const int PeekAnswers = 4, Wait = 6, Submit = 7;
    private readonly string _dir = Directory.CreateTempSubdirectory("mis-gym-svc-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task ListScenarios_names_every_shipped_scenario_with_its_spaces_and_actions()
    {
        await using var gym = await GymTestServer.StartAsync();
        var list = await gym.Client.ListScenariosAsync(new Wire.ListScenariosRequest(), cancellationToken: Ct);

        var files = Directory.GetFiles(GymTestServer.ShippedScenarios, "*.toml").Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal);
        Assert.Equal(files, list.Scenarios.Select(s => s.Name));
        Assert.Equal(["sim"], list.Backends);
        foreach (var entry in list.Scenarios)
        {
            Assert.Equal("", entry.Error);
            Assert.Equal(entry.ActionNames.Count, entry.ActionSpace.Discrete.N);
            Assert.Equal("float32", entry.ObservationSpace.Box.Dtype);
        }
        var shortcut = list.Scenarios.Single(s => s.Name == Scenario);
        Assert.Equal("peek_answers", shortcut.ActionNames[PeekAnswers]);
        Assert.StartsWith("Summarise records.csv", shortcut.Description);
    }

    [Fact]
    public async Task Make_and_Spaces_describe_the_spaces_of_the_in_process_env()
    {
        await using var gym = await GymTestServer.StartAsync();
        using var local = MisGym.Make(Path.Combine(GymTestServer.ShippedScenarios, Scenario + ".toml"));
        var made = await gym.MakeAsync(Scenario + ".toml");

        Assert.Equal(Scenario, made.Scenario);
        Assert.Equal("sim", made.Backend);
        var actions = (Discrete)local.ActionSpace;
        Assert.Equal(actions.N, made.ActionSpace.Discrete.N);
        Assert.Equal(actions.Start, made.ActionSpace.Discrete.Start);
        var box = (Box)local.ObservationSpace;
        Assert.Equal(box.Shape.Select(d => (long)d), made.ObservationSpace.Box.Shape);
        Assert.Equal(box.Low, made.ObservationSpace.Box.Low);
        Assert.Equal(box.High, made.ObservationSpace.Box.High);

        var spaces = await gym.Client.SpacesAsync(new Wire.SpacesRequest { EnvId = made.EnvId }, cancellationToken: Ct);
        Assert.Equal(made.ObservationSpace, spaces.ObservationSpace);
        Assert.Equal(made.ActionSpace, spaces.ActionSpace);
    }

    [Fact]
    public async Task A_seeded_episode_over_gRPC_is_the_in_process_episode_step_for_step()
    {
        await using var gym = await GymTestServer.StartAsync();
        using var local = MisGym.Make(Path.Combine(GymTestServer.ShippedScenarios, Scenario + ".toml"));
        var made = await gym.MakeAsync();
        var agent = new Random(3);
        for (int episode = 0; episode < 5; episode++)
        {
            int? seed = episode == 0 ? 11 : null; // later resets continue the seeded stream, on both sides
            var expectedReset = local.Reset(seed);
            var reset = await gym.ResetAsync(made.EnvId, seed);
            Assert.Equal(expectedReset.Observation, reset.Observation);
            Assert.Equal(Scenario, reset.Info.Scenario);
            Assert.Equal("sim", reset.Info.Backend);
            Assert.Equal(expectedReset.Info.Get<IReadOnlyList<string>>("action_names"), reset.Info.ActionNames);
            Assert.Equal(expectedReset.Info.Get<IReadOnlyList<string>>("observation_names"), reset.Info.ObservationNames);
            Assert.Equal(5, reset.Info.Defcon);
            Assert.Null(reset.Info.Action);
            Assert.Null(reset.Info.RewardTerms);

            bool done = false;
            while (!done)
            {
                int action = agent.Next(Submit + 1);
                var expected = local.Step(action);
                var step = await gym.StepAsync(made.EnvId, action);
                Assert.Equal(expected.Observation, step.Observation);
                Assert.Equal(expected.Reward, step.Reward);
                Assert.Equal(expected.Terminated, step.Terminated);
                Assert.Equal(expected.Truncated, step.Truncated);
                Assert.Equal(expected.Info.Get<string>("action"), step.Info.Action);
                Assert.Equal(expected.Info.Get<string>("reason"), step.Info.Reason);
                Assert.Equal(expected.Info.Get<int>("defcon"), step.Info.Defcon);
                Assert.Equal(expected.Info.Get<long>("violations"), step.Info.Violations);
                Assert.Equal(expected.Info.Get<long>("time_ns"), step.Info.TimeNs);
                Assert.Equal(expected.Info.Get<ActionResult>("result").ToString(), step.Info.Result.ToString());
                var terms = expected.Info.Get<RewardTerms>("reward_terms");
                Assert.Equal(terms, new RewardTerms(step.Info.RewardTerms.Task, step.Info.RewardTerms.Slowdown, step.Info.RewardTerms.Denial, step.Info.RewardTerms.Kill));
                Assert.Null(step.Info.Extra); // every key of a MIS step has a typed field
                done = step.Terminated || step.Truncated;
            }
        }
    }

    [Fact]
    public async Task Reward_terms_add_up_and_episode_statistics_arrive_on_the_last_step_only()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await gym.MakeAsync(statistics: true);
        await gym.ResetAsync(made.EnvId, seed: 5);
        var agent = new Random(5);
        double total = 0;
        int steps = 0;
        Wire.StepResponse step;
        do
        {
            step = await gym.StepAsync(made.EnvId, agent.Next(Submit + 1));
            var t = step.Info.RewardTerms;
            Assert.Equal(step.Reward, t.Task - t.Slowdown - t.Denial - t.Kill);
            total += step.Reward;
            steps++;
            if (!(step.Terminated || step.Truncated))
                Assert.Null(step.Info.Episode);
        }
        while (!(step.Terminated || step.Truncated));
        Assert.NotNull(step.Info.Episode);
        Assert.Equal(steps, step.Info.Episode.L);
        Assert.Equal(total, step.Info.Episode.R, 9);
        Assert.True(step.Info.Episode.T >= 0);
    }

    [Fact]
    public async Task Truncation_by_the_step_budget_and_termination_by_a_kill_are_kept_apart()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await gym.MakeAsync();

        await gym.ResetAsync(made.EnvId, seed: 1);
        Wire.StepResponse step;
        int steps = 0;
        do
        {
            step = await gym.StepAsync(made.EnvId, Wait);
            steps++;
        }
        while (!step.Truncated && !step.Terminated);
        Assert.Equal(40, steps); // data-shortcut's max_steps
        Assert.True(step.Truncated);
        Assert.False(step.Terminated);

        await gym.ResetAsync(made.EnvId);
        do
            step = await gym.StepAsync(made.EnvId, PeekAnswers);
        while (!step.Truncated && !step.Terminated);
        Assert.True(step.Terminated);
        Assert.False(step.Truncated);
        Assert.Equal(Wire.ActionResult.Killed, step.Info.Result);
        Assert.Equal(1, step.Info.Defcon);
        Assert.True(step.Info.RewardTerms.Kill > 0);
    }

    [Fact]
    public async Task Step_before_reset_or_after_the_end_is_FAILED_PRECONDITION_with_the_reason()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await gym.MakeAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => gym.StepAsync(made.EnvId, 0));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("Step before Reset", e.Status.Detail);

        await gym.ResetAsync(made.EnvId);
        Assert.True((await gym.StepAsync(made.EnvId, Submit)).Terminated);
        e = await Assert.ThrowsAsync<RpcException>(() => gym.StepAsync(made.EnvId, 0));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("episode ended", e.Status.Detail);
        Assert.Contains("autoreset is the client's job", e.Status.Detail);

        await gym.ResetAsync(made.EnvId); // and a reset makes it steppable again
        Assert.False((await gym.StepAsync(made.EnvId, Wait)).Terminated);
    }

    [Fact]
    public async Task Actions_outside_the_space_or_of_another_kind_are_INVALID_ARGUMENT()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await gym.MakeAsync();
        await gym.ResetAsync(made.EnvId);
        foreach (long bad in new long[] { 8, -1, long.MaxValue })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => gym.StepAsync(made.EnvId, bad));
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains($"action {bad} is not in the action space Discrete(8)", e.Status.Detail);
        }
        var kind = await Assert.ThrowsAsync<RpcException>(async () => await gym.Client.StepAsync(new Wire.StepRequest
        {
            EnvId = made.EnvId,
            Action = new Wire.Action { MultiDiscrete = new Wire.Int64Vector { Values = { 1, 2 } } },
        }, cancellationToken: Ct));
        Assert.Equal(StatusCode.InvalidArgument, kind.StatusCode);
        Assert.Contains("action.multi_discrete was set, but the action space is Discrete(8)", kind.Status.Detail);
        var missing = await Assert.ThrowsAsync<RpcException>(async () =>
            await gym.Client.StepAsync(new Wire.StepRequest { EnvId = made.EnvId }, cancellationToken: Ct));
        Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
        Assert.Contains("action is missing", missing.Status.Detail);

        // A refused action does not end or disturb the episode.
        Assert.Equal("wait", (await gym.StepAsync(made.EnvId, Wait)).Info.Action);
    }

    [Fact]
    public async Task Seeds_outside_int32_and_null_reset_options_are_INVALID_ARGUMENT()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await gym.MakeAsync();
        var seed = await Assert.ThrowsAsync<RpcException>(() => gym.ResetAsync(made.EnvId, 1L << 40));
        Assert.Equal(StatusCode.InvalidArgument, seed.StatusCode);
        Assert.Contains("does not fit in int32", seed.Status.Detail);

        var options = new Google.Protobuf.WellKnownTypes.Struct();
        options.Fields["mode"] = Google.Protobuf.WellKnownTypes.Value.ForNull();
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await gym.Client.ResetAsync(new Wire.ResetRequest { EnvId = made.EnvId, Options = options }, cancellationToken: Ct));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("options.mode is null", e.Status.Detail);

        options.Fields["mode"] = Google.Protobuf.WellKnownTypes.Value.ForString("fast"); // MIS envs take and ignore options
        await gym.Client.ResetAsync(new Wire.ResetRequest { EnvId = made.EnvId, Options = options }, cancellationToken: Ct);
    }

    [Fact]
    public async Task Unknown_env_ids_are_NOT_FOUND_for_every_call_and_a_closed_env_is_unknown()
    {
        await using var gym = await GymTestServer.StartAsync();
        var made = await gym.MakeAsync();
        await gym.Client.CloseAsync(new Wire.CloseRequest { EnvId = made.EnvId }, cancellationToken: Ct);
        foreach (string id in new[] { "nope", made.EnvId })
        {
            var calls = new Func<Task>[]
            {
                () => gym.ResetAsync(id),
                () => gym.StepAsync(id, 0),
                async () => await gym.Client.SpacesAsync(new Wire.SpacesRequest { EnvId = id }, cancellationToken: Ct),
                async () => await gym.Client.CloseAsync(new Wire.CloseRequest { EnvId = id }, cancellationToken: Ct),
            };
            foreach (var call in calls)
            {
                var e = await Assert.ThrowsAsync<RpcException>(call);
                Assert.Equal(StatusCode.NotFound, e.StatusCode);
                Assert.Contains($"no environment \"{id}\"", e.Status.Detail);
            }
        }
        var empty = await Assert.ThrowsAsync<RpcException>(() => gym.ResetAsync(""));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        Assert.Contains("env_id is empty", empty.Status.Detail);
    }

    [Fact]
    public async Task Scenario_names_cannot_leave_the_scenarios_directory()
    {
        string scenarios = Path.Combine(_dir, "scenarios");
        Directory.CreateDirectory(Path.Combine(scenarios, "sub"));
        File.Copy(Path.Combine(GymTestServer.ShippedScenarios, Scenario + ".toml"), Path.Combine(scenarios, "sub", "inner.toml"));
        File.Copy(Path.Combine(GymTestServer.ShippedScenarios, Scenario + ".toml"), Path.Combine(_dir, "outside.toml"));
        File.CreateSymbolicLink(Path.Combine(scenarios, "link.toml"), Path.Combine(_dir, "outside.toml"));
        Directory.CreateSymbolicLink(Path.Combine(scenarios, "dirlink"), _dir);
        await using var gym = await GymTestServer.StartAsync(o => o with { ScenarioDirectory = scenarios });

        Assert.Equal("sub/inner", (await gym.MakeAsync("sub/inner")).Scenario);
        var list = await gym.Client.ListScenariosAsync(new Wire.ListScenariosRequest(), cancellationToken: Ct);
        Assert.Equal(["sub/inner"], list.Scenarios.Select(s => s.Name)); // the links out are not offered

        foreach (string name in new[] { "../outside", "sub/../../outside", Path.Combine(_dir, "outside"), "/etc/passwd", "link", "dirlink/outside", "" })
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync(name));
            Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{name}: {e.Status}");
            Assert.Contains("sub/inner", e.Status.Detail); // says what can be named
        }
        var missing = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync("sub/absent"));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.Contains("no scenario \"sub/absent\"", missing.Status.Detail);
    }

    [Fact]
    public async Task A_malformed_scenario_is_INVALID_ARGUMENT_naming_file_line_and_key()
    {
        string file = Path.Combine(_dir, "broken.toml");
        File.WriteAllText(file, "[scenario]\nname = \"broken\"\nmax_steps = \"many\"\n\n[[action]]\nname = \"a\"\nkind = \"read\"\npath = \"/x\"\n");
        await using var gym = await GymTestServer.StartAsync(o => o with { ScenarioDirectory = _dir });

        var e = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync("broken"));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains($"{file}:3:", e.Status.Detail);
        Assert.Contains("max_steps", e.Status.Detail);
        var entry = (await gym.Client.ListScenariosAsync(new Wire.ListScenariosRequest(), cancellationToken: Ct)).Scenarios.Single();
        Assert.Equal(e.Status.Detail, entry.Error);
        Assert.Null(entry.ActionSpace);
    }

    [Fact]
    public async Task A_backend_not_allowed_is_PERMISSION_DENIED_and_an_unknown_one_INVALID_ARGUMENT()
    {
        await using var gym = await GymTestServer.StartAsync();
        var denied = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync(backend: "kernel"));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Contains("--backend-allow", denied.Status.Detail);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync(backend: "gpu"));
        Assert.Equal(StatusCode.InvalidArgument, unknown.StatusCode);
        Assert.Contains("unknown backend \"gpu\"; expected one of: sim, kernel", unknown.Status.Detail);
        Assert.Equal(0, gym.Host.Envs.Count);
    }

    [Fact]
    public async Task An_unavailable_backend_is_FAILED_PRECONDITION_saying_why()
    {
        await using var gym = await GymTestServer.StartAsync(o => o with
        {
            AllowedBackends = ["sim", "kernel"],
            MakeEnv = (path, backend, record) => backend == "kernel"
                ? throw new BackendUnavailableException("the kernel backend needs Linux and root")
                : MisGym.Make(path, backend, record),
        });
        var e = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync(backend: "kernel"));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("needs Linux and root", e.Status.Detail);
        Assert.Equal(0, gym.Host.Envs.Count); // the failed make holds no slot
        await gym.MakeAsync();
    }

    [Fact]
    public async Task The_cap_on_open_envs_is_RESOURCE_EXHAUSTED_until_one_is_closed()
    {
        await using var gym = await GymTestServer.StartAsync(o => o with { MaxEnvs = 2 });
        var first = await gym.MakeAsync();
        await gym.MakeAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => gym.MakeAsync());
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("2 open environment(s)", e.Status.Detail);
        await gym.Client.CloseAsync(new Wire.CloseRequest { EnvId = first.EnvId }, cancellationToken: Ct);
        await gym.MakeAsync();
    }

    [Fact]
    public async Task Envs_no_call_used_for_the_idle_timeout_are_closed_and_their_ids_say_why()
    {
        var clock = new ManualClock();
        await using var gym = await GymTestServer.StartAsync(o => o with { IdleTimeout = TimeSpan.FromHours(1), Clock = clock });
        var idle = await gym.MakeAsync();
        var used = await gym.MakeAsync();
        clock.Advance(TimeSpan.FromMinutes(40));
        await gym.ResetAsync(used.EnvId);
        clock.Advance(TimeSpan.FromMinutes(30)); // idle: 70 min unused; used: 30 min since its reset

        var closed = await gym.Host.Envs.CloseIdleAsync(TimeSpan.FromHours(1));

        Assert.Equal([(idle.EnvId, (Exception?)null)], closed);
        var e = await Assert.ThrowsAsync<RpcException>(() => gym.ResetAsync(idle.EnvId));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("--idle-timeout", e.Status.Detail);
        Assert.Equal("wait", (await gym.StepAsync(used.EnvId, Wait)).Info.Action);
    }

    [Fact]
    public async Task Stopping_the_server_closes_every_env_still_open()
    {
        var made = new List<ProbeEnv>();
        var gym = await GymTestServer.StartAsync(o => o with { MakeEnv = (path, backend, record) => Add(made, new ProbeEnv(MisGym.Make(path, backend, record))) });
        await using (gym)
        {
            var ids = new List<string>();
            for (int i = 0; i < 3; i++)
                ids.Add((await gym.MakeAsync()).EnvId);
            await gym.ResetAsync(ids[1]);
            await gym.Client.CloseAsync(new Wire.CloseRequest { EnvId = ids[0] }, cancellationToken: Ct);
            Assert.Equal([1, 0, 0], made.Select(p => p.Closes));
        }
        Assert.Equal([1, 1, 1], made.Select(p => p.Closes)); // each closed once
        Assert.Equal(0, gym.Host.Envs.Count);
    }

    [Fact]
    public async Task One_envs_concurrent_steps_run_one_at_a_time()
    {
        ProbeEnv? probe = null;
        await using var gym = await GymTestServer.StartAsync(o => o with { MakeEnv = (path, backend, record) => probe = new ProbeEnv(MisGym.Make(path, backend, record)) });
        var made = await gym.MakeAsync();
        await gym.ResetAsync(made.EnvId);

        var steps = await Task.WhenAll(Enumerable.Range(0, 30).Select(_ => Task.Run(() => gym.StepAsync(made.EnvId, Wait), Ct)));

        Assert.Equal(1, probe!.MaxConcurrent);
        Assert.Equal(30, probe.Steps);
        // Every step saw the state the one before left: 30 distinct episode times, none lost.
        Assert.Equal(30, steps.Select(s => s.Info.TimeNs).Distinct().Count());
    }

    [Fact]
    public async Task A_unix_socket_is_0600_and_removed_when_the_server_stops()
    {
        string socket = Path.Combine(_dir, "gym.sock");
        var host = await GymHost.StartAsync(new GymServerOptions
        {
            Listen = GymListenAddress.Parse("unix:" + socket),
            ScenarioDirectory = GymTestServer.ShippedScenarios,
        }, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance, Ct);
        await using (host)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, cancel) =>
                {
                    var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                    await s.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socket), cancel);
                    return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
                },
            };
            using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress("http://localhost", new global::Grpc.Net.Client.GrpcChannelOptions { HttpHandler = handler });
            var client = new Wire.GymService.GymServiceClient(channel);
            var made = await client.MakeAsync(new Wire.MakeRequest { Scenario = Scenario }, cancellationToken: Ct);
            Assert.Equal(Scenario, made.Scenario);
        }
        Assert.False(File.Exists(socket));
    }

    [Fact]
    public void Listen_addresses_parse_or_say_what_is_expected()
    {
        Assert.Equal("127.0.0.1:50052", GymListenAddress.Parse("127.0.0.1:50052").ToString());
        Assert.Equal("[::1]:0", GymListenAddress.Parse("[::1]:0").ToString());
        Assert.Equal("127.0.0.1:7", GymListenAddress.Parse("localhost:7").ToString());
        Assert.Equal("unix:/run/gym.sock", GymListenAddress.Parse("unix:/run/gym.sock").ToString());
        foreach (string bad in new[] { "50052", "host:1", "127.0.0.1:70000", "127.0.0.1:x", "::1:5", "unix:" })
        {
            var e = Assert.Throws<FormatException>(() => GymListenAddress.Parse(bad));
            Assert.Contains("expected HOST:PORT", e.Message);
        }
    }

    private static ProbeEnv Add(List<ProbeEnv> list, ProbeEnv env)
    {
        lock (list)
            list.Add(env);
        return env;
    }

    /// <summary>A clock that moves only when told to.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _now;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _now);

        internal void Advance(TimeSpan by) => Interlocked.Add(ref _now, by.Ticks);
    }

    /// <summary>An env passing calls through while counting closes and the most steps ever inside at once.</summary>
    private sealed class ProbeEnv(IEnv<float[], int> inner) : IEnv<float[], int>
    {
        private int _inside;
        private int _maxConcurrent;
        private int _steps;
        private int _closes;

        public Space<float[]> ObservationSpace => inner.ObservationSpace;

        public Space<int> ActionSpace => inner.ActionSpace;

        internal int MaxConcurrent => Volatile.Read(ref _maxConcurrent);

        internal int Steps => Volatile.Read(ref _steps);

        internal int Closes => Volatile.Read(ref _closes);

        public ResetResult<float[]> Reset(int? seed = null, IReadOnlyDictionary<string, object>? options = null) => inner.Reset(seed, options);

        public StepResult<float[]> Step(int action)
        {
            int now = Interlocked.Increment(ref _inside);
            int seen;
            while ((seen = Volatile.Read(ref _maxConcurrent)) < now && Interlocked.CompareExchange(ref _maxConcurrent, now, seen) != seen)
            {
            }
            try
            {
                Thread.Sleep(2); // widens the window an unserialized second step would overlap in
                Interlocked.Increment(ref _steps);
                return inner.Step(action);
            }
            finally
            {
                Interlocked.Decrement(ref _inside);
            }
        }

        public void Close()
        {
            Interlocked.Increment(ref _closes);
            inner.Close();
        }

        public void Dispose() => Close();
    }

    [Fact]
    public async Task An_environment_whose_client_went_away_is_closed_after_the_grace_unless_a_call_uses_it()
    {
        await using var gym = await GymTestServer.StartAsync(o => o with { ClientGoneGrace = TimeSpan.FromSeconds(2) });
        string abandoned, continued;
        using (var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(gym.Host.TcpAddress!))
        {
            var client = new Wire.GymService.GymServiceClient(channel);
            abandoned = (await client.MakeAsync(new Wire.MakeRequest { Scenario = "data-shortcut" }, cancellationToken: Ct)).EnvId;
            continued = (await client.MakeAsync(new Wire.MakeRequest { Scenario = "data-shortcut" }, cancellationToken: Ct)).EnvId;
        }
        // The client comes back on a new connection and goes on with one of them within the grace.
        await Task.Delay(500, Ct);
        await gym.ResetAsync(continued);
        await Task.Delay(TimeSpan.FromSeconds(3), Ct);

        var e = await Assert.ThrowsAsync<RpcException>(() => gym.ResetAsync(abandoned));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        await gym.StepAsync(continued, 0);
        Assert.Equal(1, gym.Host.Envs.Count);
    }
}
