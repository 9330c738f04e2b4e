//! The `shopfleet` command line.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{error, info, warn};

use shopfleet::cloud::Cloud;
use shopfleet::cloud::aws::{AwsCloud, AwsOptions};
use shopfleet::cloud::budget::RequestBudget;
use shopfleet::controller::{self, Context, Scope};
#[cfg(feature = "simulation")]
use shopfleet::sim::{LiveSim, SimCloud, VirtualClock};
#[cfg(feature = "simulation")]
use shopfleet::simulate::{self, Pace, Scenario, render};
use shopfleet::telemetry::{self, LogFormat, Metrics, Readiness};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shopfleet",
    version,
    about = "Runs one online shop in three AWS regions and keeps them converged"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig (or in-cluster).
    Run(RunArgs),
    /// Run a scenario offline: the real controller, an in-process Kubernetes
    /// API server and the simulated cloud on virtual time (default: the acme
    /// fleet comes up in three regions). Exits 1 when an expectation fails.
    #[cfg(feature = "simulation")]
    Simulate(SimulateArgs),
    /// Print the ShopRegion CRD as YAML (`shopfleet crd | kubectl apply -f -`).
    Crd,
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CloudKind {
    /// The real AWS APIs, credentials from the default chain (IRSA, Pod Identity).
    Aws,
    /// The in-process simulated cloud: no AWS account needed.
    #[cfg(feature = "simulation")]
    Simulated,
}

#[cfg(feature = "simulation")]
#[derive(clap::Args)]
struct SimulateArgs {
    /// A scenario file (see docs/simulation.md); the built-in `bootstrap`
    /// scenario when absent.
    scenario: Option<std::path::PathBuf>,
    /// Virtual seconds per real second; progress is shown as it happens.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    speed: u32,
    /// Run as fast as possible on exact virtual time (no progress shown
    /// while it runs).
    #[arg(long, conflicts_with = "speed")]
    instant: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

#[cfg(feature = "simulation")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// A timeline, a summary table, the figures and the expectations.
    Text,
    /// One JSON document (field names in docs/simulation.md).
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch ShopRegions in these namespaces only, comma-separated or
    /// repeated (default: every namespace). Each namespace gets its own
    /// watches, so the operator needs no cluster-wide permission.
    #[arg(long = "namespace", env = "SHOPFLEET_NAMESPACE", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Where cloud resources live.
    #[arg(long, value_enum, default_value = "aws")]
    cloud: CloudKind,
    /// With `--cloud aws`: send every AWS call to this URL instead of the
    /// regional endpoints (an emulator such as moto, or a proxy).
    #[arg(long, env = "SHOPFLEET_AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
    /// With `--cloud simulated`: serve the simulated cloud's control
    /// endpoint beside the metrics (`/sim/state`, `/sim/writers`,
    /// `/sim/outage/REGION`, `/sim/recover/REGION`, `/sim/speed/N`) for
    /// tests and demos.
    #[cfg(feature = "simulation")]
    #[arg(long)]
    sim_control: bool,
    /// With `--cloud simulated`: keep the simulated cloud in this file, so
    /// that a restarted operator finds what its predecessor created (as it
    /// would in AWS). Without it the simulated cloud lives in the process.
    #[cfg(feature = "simulation")]
    #[arg(long, value_name = "FILE")]
    sim_state: Option<std::path::PathBuf>,
    /// With `--cloud simulated`: the network the simulated account holds
    /// (a YAML map of region to `subnetGroups` and `securityGroups`, as
    /// `samples/accounts/samples.yaml`); a subnet group or security group
    /// outside it is refused as AWS refuses it. Without it the simulated
    /// account holds whatever is named.
    #[cfg(feature = "simulation")]
    #[arg(long, value_name = "FILE")]
    sim_account: Option<std::path::PathBuf>,
    /// With `--cloud simulated`: simulated cloud seconds per real second.
    #[cfg(feature = "simulation")]
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3600))]
    sim_speed: u32,
    /// The most AWS requests a second this operator sends to one region,
    /// all services together: reads beyond it wait their turn (up to 5 s,
    /// then count as throttled without being sent); failovers and other
    /// changes always go, and spend it too.
    #[arg(
        long,
        env = "SHOPFLEET_AWS_REQUESTS_PER_SECOND",
        default_value_t = shopfleet::cloud::budget::DEFAULT_PER_SECOND,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    aws_requests_per_second: u32,
    /// The most ShopRegions reconciled at once in each of the two lanes
    /// (steady; urgent: a shop whose health verdicts changed, or the regions
    /// that may take over from a lost writer, and a failover instant), per
    /// watched namespace; the others wait their turn. Bounds
    /// the operator's memory: a restart reconciles every ShopRegion at once.
    #[arg(
        long,
        env = "SHOPFLEET_MAX_CONCURRENT_RECONCILES",
        default_value_t = shopfleet::controller::DEFAULT_RECONCILE_CONCURRENCY,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    max_concurrent_reconciles: u16,
    /// Port of /healthz, /readyz and /metrics.
    #[arg(long, default_value_t = 8080)]
    metrics_port: u16,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This instance's identity in the leader election (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

/// With `--cloud simulated`: how many of the simulated cloud's latest calls
/// the process keeps in its log (the counts cover every call).
#[cfg(feature = "simulation")]
const SIM_CALL_LOG: usize = 1_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => {
            print!("{}", shopfleet::api::crd_yaml());
            Ok(())
        }
        Command::Version => {
            println!("shopfleet {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        // The simulation builds the runtime its pace needs (paused time
        // for --instant).
        #[cfg(feature = "simulation")]
        Command::Simulate(args) => return simulate(args),
        Command::Run(args) => {
            tune_malloc();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the Tokio runtime")
                .and_then(|runtime| runtime.block_on(run(args)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shopfleet: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc malloc settings the operator makes for itself, each unless the
/// environment makes it ([`malloc_setting_is_ours`]):
///
/// - **Two arenas.** glibc gives threads that contend for the heap arenas
///   of their own, up to eight per core, and a chunk freed in one arena
///   serves only that arena: the operator's small, long-lived objects
///   (caches, listings, samplers) were spread over every arena its threads
///   had touched. At 300 shops two arenas took the peak from 85.4 to
///   82.3 MiB (session 10, `docs/benchmarks.md`).
/// - **The mmap threshold held at 128 KiB**, glibc's starting value. By
///   default glibc raises it to the size of each large block freed, up to
///   32 MiB, and then keeps up to twice that free at the top of a heap
///   before giving it back. One large buffer (a page of a list response, a
///   metrics scrape) then moves every later buffer of that size into the
///   heap, where the long-lived objects allocated meanwhile pin it. Held,
///   large buffers stay in mappings of their own, returned to the system
///   when freed, at the price of a mapping and its page faults per buffer.
///   At 300 shops it took the highest RSS sampled before the run's final
///   snapshot from 67.5 to 64.4 MiB (session 15, `docs/benchmarks.md`).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").ok();
        for (parameter, value, variable, tunable) in [
            (
                libc::M_ARENA_MAX,
                2,
                "MALLOC_ARENA_MAX",
                "glibc.malloc.arena_max",
            ),
            (
                libc::M_MMAP_THRESHOLD,
                128 * 1024,
                "MALLOC_MMAP_THRESHOLD_",
                "glibc.malloc.mmap_threshold",
            ),
        ] {
            if malloc_setting_is_ours(
                std::env::var_os(variable).is_some(),
                tunables.as_deref(),
                tunable,
            ) {
                // SAFETY: mallopt only sets a malloc parameter, and glibc
                // takes it at any time; this runs before the runtime starts
                // its threads, so every arena the process makes follows it.
                unsafe {
                    libc::mallopt(parameter, value);
                }
            }
        }
    }
}

/// Whether the operator makes a malloc setting: not when its environment
/// variable is set or `GLIBC_TUNABLES` names its tunable (a user's choice
/// wins over ours).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_setting_is_ours(variable_set: bool, glibc_tunables: Option<&str>, tunable: &str) -> bool {
    !variable_set
        && !glibc_tunables.is_some_and(|tunables| {
            tunables
                .split(':')
                .any(|setting| setting.split('=').next() == Some(tunable))
        })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init_logging(args.log_format);
    let metrics = Arc::new(Metrics::default());
    let (cloud, control): (Arc<dyn Cloud>, Option<axum::Router>) = match args.cloud {
        #[cfg(feature = "simulation")]
        CloudKind::Aws
            if args.sim_control || args.sim_state.is_some() || args.sim_account.is_some() =>
        {
            anyhow::bail!(
                "--sim-control, --sim-state and --sim-account apply to --cloud simulated only"
            )
        }
        CloudKind::Aws => {
            match &args.aws_endpoint_url {
                Some(url) => info!(endpoint = %url, "using AWS through an endpoint override"),
                None => info!("using AWS, credentials from the default chain"),
            }
            let aws = AwsCloud::load(AwsOptions {
                endpoint_url: args.aws_endpoint_url.clone(),
                metrics: Some(metrics.clone()),
                ..AwsOptions::default()
            })
            .await;
            (Arc::new(aws), None)
        }
        #[cfg(feature = "simulation")]
        CloudKind::Simulated if args.aws_endpoint_url.is_some() => anyhow::bail!(
            "--aws-endpoint-url applies to --cloud aws only; the simulated cloud makes no AWS call"
        ),
        #[cfg(feature = "simulation")]
        CloudKind::Simulated => {
            info!(speed = args.sim_speed, "using the simulated cloud");
            let now = k8s_openapi::jiff::Timestamp::now();
            let cloud = match &args.sim_state {
                Some(path) => {
                    SimCloud::persistent(path, now, args.sim_speed).with_context(|| {
                        format!("cannot keep the simulated cloud in {}", path.display())
                    })?
                }
                None => SimCloud::new(VirtualClock::at(now)),
            };
            if let Some(path) = &args.sim_account {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let regions = serde_saphyr::from_str(&text)
                    .with_context(|| format!("{} is not a simulated account", path.display()))?;
                cloud.declare_account(regions);
            }
            // A running operator reads the call counts, never the log of
            // each call: keep a short tail, so memory does not grow with
            // the operator's age.
            cloud.keep_calls(SIM_CALL_LOG);
            cloud.count_calls_in(metrics.clone());
            let sim = Arc::new(LiveSim::start(cloud, args.sim_speed));
            let control = args.sim_control.then(|| {
                warn!("the simulated cloud's control endpoint is on (/sim/*)");
                shopfleet::sim::control::router(sim.clone())
            });
            (sim, control)
        }
    };
    let readiness = Readiness::default();
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (kubeconfig or in-cluster)")?;
    let client = telemetry::counting_client(config, metrics.clone())?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown requested");
        let _ = stop_tx.send(true);
    });

    let addr = SocketAddr::from(([0, 0, 0, 0], args.metrics_port));
    let probes = tokio::spawn(telemetry::serve(
        addr,
        metrics.clone(),
        readiness.clone(),
        control,
        wait_for(stop_rx.clone()),
    ));

    let identity = args
        .identity
        .unwrap_or_else(|| format!("shopfleet-{}", std::process::id()));
    let leases = LeaseManagerBuilder::new(client.clone(), "shopfleet-leader")
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_field_manager("shopfleet-leader-election")
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .context("cannot set up leader election")?;
    let (mut leader_rx, lease_task) = leases.watch().await;
    // A standby replica is healthy and ready: it serves probes and waits.
    readiness.set(true);
    info!(%identity, "waiting for leadership");
    let mut stop = stop_rx.clone();
    loop {
        if *leader_rx.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader_rx.changed() => changed.context("leader election stopped")?,
            _ = stop.changed() => {
                drop(leader_rx);
                let _ = lease_task.await;
                return Ok(());
            }
        }
    }
    info!(%identity, "became leader");
    metrics.leader.set(1);

    // Stop reconciling on SIGTERM or as soon as leadership is lost: two
    // leaders must never write at once.
    let (halt_tx, halt_rx) = watch::channel(false);
    let halt_task = {
        let mut leader_rx = leader_rx.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let lost_leadership = async {
                while leader_rx.changed().await.is_ok() {
                    if !*leader_rx.borrow() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = stop.changed() => {},
                _ = lost_leadership => error!("lost leadership; stopping"),
            }
            let _ = halt_tx.send(true);
        })
    };
    let scopes: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.into_iter().map(Some).collect()
    };
    // One controller per watched namespace, each with its own caches; they
    // share the client, the metrics and the cloud.
    let controllers = scopes.into_iter().map(|namespace| {
        let ctx = Arc::new(
            Context::new(client.clone(), metrics.clone(), Some(identity.clone()))
                .with_cloud(
                    cloud.clone(),
                    RequestBudget::new(args.aws_requests_per_second),
                )
                .with_reconcile_concurrency(args.max_concurrent_reconciles),
        );
        controller::run(ctx, Scope { namespace }, wait_for(halt_rx.clone()))
    });
    // The first controller that fails stops them all: the process exits
    // with its error (and the pod restarts) instead of running on half-blind.
    let outcome = futures::future::try_join_all(controllers).await.map(|_| ());
    // Its clone of the leader channel would keep the lease task alive.
    halt_task.abort();
    metrics.leader.set(0);
    drop(leader_rx);
    if let Ok(Err(error)) = lease_task.await {
        warn!(%error, "could not release the leader lease");
    }
    if outcome.is_err() {
        // Not a requested stop: nothing else will end the probe server.
        probes.abort();
    }
    let _ = probes.await;
    outcome
}

#[cfg(feature = "simulation")]
/// Exit codes: 0 every expectation held, 1 one failed, 2 the scenario is
/// invalid or the run could not be carried out.
fn simulate(args: SimulateArgs) -> ExitCode {
    let scenario = match &args.scenario {
        Some(path) => Scenario::from_file(path),
        None => simulate::default_scenario(),
    };
    let scenario = match scenario {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("shopfleet simulate: invalid scenario {error}");
            return ExitCode::from(2);
        }
    };
    let pace = if args.instant {
        Pace::Instant
    } else {
        Pace::Speed(args.speed)
    };
    let live = args.output == OutputFormat::Text && pace != Pace::Instant;
    if live {
        println!(
            "{}",
            render::heading(&scenario.name, &scenario.description, pace)
        );
        println!("{}", render::timeline_header());
    }
    let report = simulate::run_blocking(&scenario, pace, |entry| {
        if live {
            println!("{}", render::timeline_line(entry));
        }
    });
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("shopfleet simulate: the run failed: {error:#}");
            return ExitCode::from(2);
        }
    };
    match args.output {
        OutputFormat::Json => println!("{}", render::json(&report)),
        OutputFormat::Text if live => print!("{}", render::closing_text(&report)),
        OutputFormat::Text => print!("{}", render::text(&report)),
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::malloc_setting_is_ours;

    const ARENAS: &str = "glibc.malloc.arena_max";

    #[test]
    fn the_operator_tunes_malloc_only_where_the_environment_does_not() {
        assert!(malloc_setting_is_ours(false, None, ARENAS));
        assert!(malloc_setting_is_ours(
            false,
            Some("glibc.malloc.tcache_count=0"),
            ARENAS
        ));
        assert!(
            !malloc_setting_is_ours(true, None, ARENAS),
            "MALLOC_ARENA_MAX is set"
        );
        assert!(!malloc_setting_is_ours(
            false,
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4"),
            ARENAS
        ));
        assert!(
            malloc_setting_is_ours(false, Some("glibc.malloc.arena_max_not=1"), ARENAS),
            "another tunable whose name begins alike"
        );
        let mmap = "glibc.malloc.mmap_threshold";
        let tunables = Some("glibc.malloc.mmap_threshold=65536");
        assert!(malloc_setting_is_ours(false, tunables, ARENAS));
        assert!(!malloc_setting_is_ours(false, tunables, mmap));
        assert!(malloc_setting_is_ours(false, None, mmap));
    }
}
