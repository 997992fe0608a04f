//! `kubernetes.yml` and `aws.Dockerfile` agree with the code: ports, probe
//! routes, CPU requests, the HPA's target, drain timing, settings names.

use std::collections::HashSet;

use clap::CommandFactory;
use translation_front::cli::Cli;
use translation_front::config::parse_duration;
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::server;

const MANIFEST: &str = include_str!("../../kubernetes.yml");
const DOCKERFILE: &str = include_str!("../../aws.Dockerfile");

fn docs() -> Vec<Yaml> {
    YamlLoader::load_from_str(MANIFEST).expect("kubernetes.yml parses")
}

fn object<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{kind} {name} in kubernetes.yml"))
}

fn containers(doc: &Yaml) -> Vec<&Yaml> {
    let spec = if doc["kind"].as_str() == Some("CronJob") {
        &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &doc["spec"]["template"]["spec"]
    };
    spec["containers"].as_vec().expect("containers").iter().collect()
}

/// The defaults, whatever this process's environment says (env fallbacks reset).
fn defaults() -> translation_front::config::Config {
    use clap::FromArgMatches;
    let matches = Cli::command().mut_args(|a| a.env(None)).try_get_matches_from(["translation-front"]).unwrap();
    Cli::from_arg_matches(&matches).unwrap().config
}

fn config_map(docs: &[Yaml]) -> Vec<(String, String)> {
    object(docs, "ConfigMap", "translation-config")["data"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn container_ports_match_the_default_listen_addresses_and_expose() {
    let docs = docs();
    let c = defaults();
    let deployment = object(&docs, "Deployment", "translation-deployment");
    assert_eq!(deployment["spec"]["template"]["metadata"]["labels"]["app"].as_str(), Some("translation"));
    let ports = containers(deployment)[0]["ports"].as_vec().unwrap().clone();
    let port = |name: &str| ports.iter().find(|p| p["name"].as_str() == Some(name)).unwrap()["containerPort"].as_i64();
    assert_eq!(port("http"), Some(i64::from(c.listen_addr.port())));
    assert_eq!(port("metrics"), Some(i64::from(c.metrics_addr.port())));
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(c.metrics_addr.port().to_string().as_str()));
    let expose = DOCKERFILE.lines().find(|l| l.starts_with("EXPOSE")).expect("EXPOSE");
    let exposed: HashSet<u16> = expose.split_whitespace().skip(1).map(|p| p.parse().unwrap()).collect();
    assert_eq!(exposed, HashSet::from([c.listen_addr.port(), c.metrics_addr.port()]));
}

#[tokio::test]
async fn probe_paths_are_routes_the_server_answers() {
    let docs = docs();
    let deployment = object(&docs, "Deployment", "translation-deployment");
    let container = containers(deployment)[0];
    let s = server().spawn();
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap_or_else(|| panic!("{probe} path"));
        assert_eq!(container[probe]["httpGet"]["port"].as_str(), Some("http"));
        assert_eq!(s.get(path).await.status, 200, "{probe} {path}");
    }
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
}

#[test]
fn every_container_has_a_cpu_request_and_the_server_asks_for_250m() {
    let docs = docs();
    let mut seen = 0;
    for doc in docs.iter().filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "CronJob" | "Job"))) {
        for c in containers(doc) {
            assert!(c["resources"]["requests"]["cpu"].as_str().is_some(), "{:?} has a CPU request", c["name"]);
            assert!(c["resources"]["limits"]["memory"].as_str().is_some(), "{:?} has a memory limit", c["name"]);
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
            seen += 1;
        }
    }
    assert!(seen >= 2);
    let deployment = object(&docs, "Deployment", "translation-deployment");
    assert_eq!(containers(deployment)[0]["resources"]["requests"]["cpu"].as_str(), Some("250m"));
}

#[test]
fn the_hpa_targets_the_deployment_on_cpu() {
    let docs = docs();
    let hpa = docs.iter().find(|d| d["kind"].as_str() == Some("HorizontalPodAutoscaler")).expect("an HPA");
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"].as_str(), Some("Deployment"));
    assert_eq!(target["name"].as_str(), Some("translation-deployment"));
    object(&docs, "Deployment", target["name"].as_str().unwrap());
    assert_eq!((hpa["spec"]["minReplicas"].as_i64(), hpa["spec"]["maxReplicas"].as_i64()), (Some(2), Some(10)));
    let metric = &hpa["spec"]["metrics"][0]["resource"];
    assert_eq!(metric["name"].as_str(), Some("cpu"));
    assert_eq!(metric["target"]["averageUtilization"].as_i64(), Some(75));
}

/// How long an NLB with IP targets keeps opening new connections to a target
/// after DeregisterTargets: about two minutes whatever the deregistration
/// delay (aws-load-balancer-controller #2366 and #3270, aws/containers-roadmap
/// #470).
const NLB_DEREGISTRATION_S: u64 = 120;

/// The Service's target group attributes, `key=value` pairs.
fn target_group_attributes(docs: &[Yaml]) -> Vec<(String, String)> {
    let annotations = &object(docs, "Service", "translation-service")["metadata"]["annotations"];
    let attributes =
        annotations["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"].as_str().unwrap();
    attributes
        .split(',')
        .map(|kv| {
            let (k, v) = kv.trim().split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn the_drain_budget_outlasts_the_nlb_and_lets_requests_finish() {
    let docs = docs();
    let settings = config_map(&docs);
    let get = |k: &str| settings.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let g = parse_duration(&get("SHUTDOWN_GRACE").expect("SHUTDOWN_GRACE in the ConfigMap")).unwrap().as_secs();
    let timeout = get("LAMBDA_TIMEOUT").map(|v| parse_duration(&v).unwrap()).unwrap_or(defaults().lambda_timeout);
    // The server's drain ends after the longest interactive request.
    let l = (timeout + translation_front::http::REQUEST_TIMEOUT_HEADROOM).as_secs();
    let deployment = object(&docs, "Deployment", "translation-deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap() as u64;
    let p = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"].as_i64().unwrap() as u64;
    let attributes = target_group_attributes(&docs);
    let attribute =
        |k: &str| attributes.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{k}"));
    let dereg: u64 = attribute("deregistration_delay.timeout_seconds").parse().unwrap();
    // While the NLB may still open connections the pod is fully in service
    // (before SIGTERM), and its listener stays open well past that.
    assert!(p >= NLB_DEREGISTRATION_S + 10, "preStop outlasts the NLB's deregistration: {p}");
    assert!(dereg >= p + g + l, "connections in flight finish before the NLB cuts them: {dereg} >= {p} + {g} + {l}");
    assert!(grace >= p + g + l + 5, "SIGKILL only after the drain: {grace} >= {p} + {g} + {l} + 5");
    // An unhealthy target's connections are drained, not reset.
    assert_eq!(attribute("target_health_state.unhealthy.connection_termination.enabled"), "false");
    let draining: u64 = attribute("target_health_state.unhealthy.draining_interval_seconds").parse().unwrap();
    assert!(draining >= g + l, "requests of an unhealthy target finish: {draining} >= {g} + {l}");
    // The budget the comment at the top of the file states is the one applied.
    let stated: String = MANIFEST.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        format!("N = NLB deregistration {NLB_DEREGISTRATION_S} s"),
        format!("P = preStop sleep {p} s"),
        format!("G = SHUTDOWN_GRACE {g} s"),
        format!("L = longest request {l} s"),
        format!("deregistration_delay >= P + G + L = {dereg} s"),
        format!("terminationGracePeriodSeconds = P + G + L + 10 = {grace} s"),
    ] {
        assert!(stated.contains(&line), "the stated budget says: {line}");
    }
}

#[test]
fn the_nlb_keeps_the_client_address_and_balances_across_zones() {
    let docs = docs();
    let attributes = target_group_attributes(&docs);
    assert!(attributes.contains(&("preserve_client_ip.enabled".into(), "true".into())), "{attributes:?}");
    let annotations = &object(&docs, "Service", "translation-service")["metadata"]["annotations"];
    assert_eq!(
        annotations["service.beta.kubernetes.io/aws-load-balancer-attributes"].as_str(),
        Some("load_balancing.cross_zone.enabled=true")
    );
}

#[test]
fn the_balancer_checks_readyz_and_the_namespace_injects_the_readiness_gate() {
    let docs = docs();
    let annotations = &object(&docs, "Service", "translation-service")["metadata"]["annotations"];
    let a = |k: &str| annotations[format!("service.beta.kubernetes.io/aws-load-balancer-{k}").as_str()].as_str();
    assert_eq!((a("healthcheck-protocol"), a("healthcheck-path")), (Some("http"), Some("/readyz")));
    assert_eq!(a("nlb-target-type"), Some("ip"));
    let namespace = object(&docs, "Namespace", "translation");
    let labels = &namespace["metadata"]["labels"];
    assert_eq!(labels["elbv2.k8s.aws/pod-readiness-gate-inject"].as_str(), Some("enabled"));
    assert_eq!(labels["pod-security.kubernetes.io/enforce"].as_str(), Some("restricted"));
    for doc in docs.iter().filter(|d| d["kind"].as_str() != Some("Namespace")) {
        assert_eq!(doc["metadata"]["namespace"].as_str(), Some("translation"), "{:?}", doc["metadata"]["name"]);
    }
    let pdb = object(&docs, "PodDisruptionBudget", "translation-pdb");
    assert_eq!(pdb["spec"]["maxUnavailable"].as_i64(), Some(1));
    let readiness = &containers(object(&docs, "Deployment", "translation-deployment"))[0]["readinessProbe"];
    assert!(readiness["failureThreshold"].as_i64().unwrap() >= 2, "one slow answer does not take a pod out");
    let irsa = include_str!("../../deploy/iam/irsa-trust-policy.json");
    assert!(irsa.contains("system:serviceaccount:translation:translation"));
}

#[test]
fn the_config_map_sets_only_settings_the_binary_knows() {
    let known: HashSet<String> = Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .chain(["AWS_REGION".to_string()])
        .collect();
    for (key, _) in config_map(&docs()) {
        assert!(known.contains(&key), "{key} is not a setting of translation-front");
    }
}

#[test]
fn the_service_and_the_cron_job_use_the_right_ports_and_subcommand() {
    let docs = docs();
    let service = object(&docs, "Service", "translation-service");
    assert_eq!(service["spec"]["type"].as_str(), Some("LoadBalancer"));
    assert_eq!(service["spec"]["ports"][0]["port"].as_i64(), Some(80));
    assert_eq!(service["spec"]["ports"][0]["targetPort"].as_str(), Some("http"));
    let cron = object(&docs, "CronJob", "translation-warmup");
    assert_eq!(cron["spec"]["suspend"].as_bool(), Some(false), "the keep-warm CronJob ships enabled");
    assert_eq!(containers(cron)[0]["args"][0].as_str(), Some("warmup"));
}

#[test]
fn the_dockerfile_runs_as_nonroot_in_exec_form_with_a_working_healthcheck() {
    let user = DOCKERFILE.lines().find(|l| l.starts_with("USER")).expect("USER");
    assert!(user.split_whitespace().nth(1).unwrap().split(':').all(|id| id.parse::<u32>().unwrap() >= 10000));
    assert!(DOCKERFILE.contains("ENTRYPOINT [\"/translation-front\"]"));
    assert!(DOCKERFILE.contains("CMD [\"/translation-front\", \"healthcheck\"]"));
    assert!(DOCKERFILE.contains("cargo build --release --locked"));
}

#[test]
fn the_service_comes_first_and_the_network_policies_let_credentials_and_the_balancer_through() {
    let docs = docs();
    let at = |kind: &str, name: &str| {
        docs.iter()
            .position(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
            .unwrap()
    };
    // The controller injects readiness gates only into pods made after the
    // Service's TargetGroupBinding.
    assert!(at("Service", "translation-service") < at("Deployment", "translation-deployment"));
    let egress_to = |policy: &Yaml, cidr: &str, port: i64| {
        policy["spec"]["egress"].as_vec().unwrap().iter().any(|rule| {
            rule["to"].as_vec().is_some_and(|to| to.iter().any(|t| t["ipBlock"]["cidr"].as_str() == Some(cidr)))
                && rule["ports"].as_vec().unwrap().iter().any(|p| p["port"].as_i64() == Some(port))
        })
    };
    // The EKS Pod Identity agent, which docs/eks.md offers instead of IRSA.
    assert!(egress_to(object(&docs, "NetworkPolicy", "translation-network"), "169.254.170.23/32", 80));
    // The load test may aim at the balancer's address.
    let job = YamlLoader::load_from_str(include_str!("../../deploy/loadtest-job.yml")).unwrap();
    let policy = object(&job, "NetworkPolicy", "translation-loadtest-network");
    assert!(egress_to(policy, "0.0.0.0/0", 80) && egress_to(policy, "0.0.0.0/0", 443));
}

#[test]
fn the_slots_hpa_is_the_cpu_hpa_plus_the_metric_the_adapter_serves() {
    let docs = docs();
    let cpu = docs.iter().find(|d| d["kind"].as_str() == Some("HorizontalPodAutoscaler")).unwrap();
    let slots = YamlLoader::load_from_str(include_str!("../../deploy/hpa-slots.yml")).unwrap();
    let slots = &slots[0];
    for field in ["scaleTargetRef", "minReplicas", "maxReplicas", "behavior"] {
        assert_eq!(slots["spec"][field], cpu["spec"][field], "{field}");
    }
    assert_eq!(slots["metadata"]["name"], cpu["metadata"]["name"], "replaces the CPU-only HPA");
    assert_eq!(slots["spec"]["metrics"][0], cpu["spec"]["metrics"][0], "CPU as before");
    let metric = slots["spec"]["metrics"][1]["pods"]["metric"]["name"].as_str().unwrap();
    let adapter = include_str!("../../deploy/monitoring/prometheus-adapter-values.yaml");
    assert!(adapter.contains(&format!("as: \"{metric}\"")), "the adapter serves {metric}");
    // The series it reads are the ones the server exports.
    let s = translation_front::telemetry::Metrics::new();
    let exported = s.render();
    for series in ["lambda_invocation_slot_seconds_total", "lambda_invocations_limit"] {
        assert!(adapter.contains(series) && exported.contains(series), "{series}");
    }
}
