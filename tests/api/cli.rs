//! `translation-front translate`: files in, CSV out, no server, the real SDK
//! against the emulator.

use crate::emulator::{Behavior, Emulator};
use crate::helpers::run;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tf-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn translate(args: Vec<String>, endpoint: String) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &[("TRANSLATION_FUNCTION", "translation"), ("AWS_ENDPOINT_URL_LAMBDA", &endpoint)])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_reactions_becomes_a_csv_with_accuracy_through_the_lambda() {
    let emu = Emulator::start(Behavior::default()).await;
    let dir = scratch("ok");
    let (source, targets, out) = (dir.join("data.txt"), dir.join("products.txt"), dir.join("results.csv"));
    // 120 lines at beam 3: two chunks (60 each), as the batch route sends them.
    let inputs: Vec<String> = (0..120).map(|i| format!("OC(=O)C.{}O", "C".repeat(i % 4 + 1))).collect();
    std::fs::write(&source, inputs.join("\n") + "\n").unwrap();
    std::fs::write(&targets, vec!["CC(O)=O"; 120].join("\n")).unwrap();
    let args = [
        "translate",
        "--source",
        source.to_str().unwrap(),
        "--targets",
        targets.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--beam",
        "3",
        "--n-best",
        "2",
    ];
    let output = translate(args.map(String::from).to_vec(), emu.url()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(output.stdout.is_empty(), "the CSV went to the file");
    assert!(stderr.contains("120/120 rows (100%)"), "progress: {stderr}");
    assert!(stderr.contains("120 rows: 120 translated, 0 failed"), "{stderr}");
    // The demo answers each mixture with its largest component first: acetic
    // acid, written here as CC(O)=O.
    assert!(stderr.contains("accuracy over 120 rows with a target: top-1 100.0%, top-2 100.0%"), "{stderr}");
    // Four mixtures, repeated: each is sent once (the first chunk's repeats
    // once, the second chunk's from the result cache). Without the cache, two
    // chunks of 60, as the batch route sends them.
    let sizes = |emu: &Emulator| {
        let mut sizes: Vec<usize> =
            emu.calls().iter().filter(|c| c.event["warmup"] != true).map(|c| c.inputs.len()).collect();
        sizes.sort_unstable();
        sizes
    };
    assert_eq!(sizes(&emu), [4]);
    let uncached = Emulator::start(Behavior::default()).await;
    let again = dir.join("again.csv");
    let mut args: Vec<String> =
        args.map(|a| if a == out.to_str().unwrap() { again.to_str().unwrap() } else { a }).map(String::from).to_vec();
    args.extend(["--cache-ttl".into(), "0".into()]);
    assert_eq!(translate(args, uncached.url()).await.status.code(), Some(0));
    assert_eq!(sizes(&uncached), [60, 60]);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), std::fs::read_to_string(&out).unwrap());
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.starts_with("line,source,rank,prediction,canonical,probability,target,correct,error\r\n"));
    assert_eq!(csv.lines().count(), 1 + 120 * 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_columns_on_standard_output_failed_rows_and_bad_files_have_their_exit_codes() {
    let emu = Emulator::start(Behavior::default()).await;
    let dir = scratch("codes");
    let source = dir.join("data.txt");
    std::fs::write(&source, "CCO\nC1CC\n").unwrap();
    let args = vec![
        "translate".into(),
        "--source".into(),
        source.to_str().unwrap().into(),
        "--columns".into(),
        "classic".into(),
        "--n-best".into(),
        "1".into(),
    ];
    let output = translate(args, emu.url()).await;
    assert_eq!(output.status.code(), Some(1), "a row failed");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("ID,Sources,Prediction_Tokens,Scores,Predictions,Error\r\n0,CCO,C C O,"), "{stdout}");
    assert!(stdout.contains("invalid_input: line 2 'C1CC'"), "{stdout}");
    assert!(!stdout.contains("INFO") && !stdout.contains("level"), "no log lines among the CSV: {stdout}");
    let missing = vec!["translate".into(), "--source".into(), "/nonexistent/data.txt".into()];
    let output = translate(missing, emu.url()).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/data.txt"));
    std::fs::remove_dir_all(dir).unwrap();
}
