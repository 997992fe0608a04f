//! The batch job on the core's `Service`, with no server.

use super::*;

#[test]
fn lines_accept_lf_crlf_bom_and_a_missing_final_newline() {
    assert_eq!(lines(b"a\r\nb\r\n", "x").unwrap(), vec!["a", "b"]);
    assert_eq!(lines(b"a\nb", "x").unwrap(), vec!["a", "b"]);
    assert_eq!(lines("\u{feff}a\n\nb\n".as_bytes(), "x").unwrap(), vec!["a", "", "b"]);
    assert!(lines(b"", "x").unwrap().is_empty());
    assert_eq!(lines(b"a\n\nb\r\n\r\n \n\n", "x").unwrap(), vec!["a", "", "b"], "blank lines at the end are not rows");
    assert!(lines(b"\n\n", "x").unwrap().is_empty());
    assert!(lines(b"\xff\n", "x").is_err());
}

use crate::translate::tests::{Fake, service};

/// Runs a batch to its end and returns its NDJSON lines.
async fn run(service: Service, input: BatchInput) -> (Vec<serde_json::Value>, Option<Summary>) {
    let service = Arc::new(service);
    let job = Job::new(&service, input, Caller::default()).await.unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let running = tokio::spawn(job.run(service, Format::Ndjson, tx, None));
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.extend(chunk);
    }
    let lines = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, running.await.unwrap())
}

#[tokio::test]
async fn every_input_gets_one_row_in_order_and_a_bad_one_an_error_row() {
    let fake = Fake::answering(&["C C O", "O C C", "N"]);
    let service = service(fake.clone(), InputFormat::Smiles);
    let input = BatchInput {
        inputs: vec!["OCC".into(), "C1CC".into(), "CN".into()],
        targets: Some(vec!["OCC".into(), "CCO".into(), "O".into()]),
        n_best: Some(3),
        fold_duplicates: true,
        ..Default::default()
    };
    let (lines, summary) = run(service, input).await;
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).filter(|k| *k != "progress").collect();
    assert_eq!(kinds, ["start", "result", "result", "result", "summary"]);
    let rows: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "result").collect();
    assert_eq!(rows.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(rows[0]["canonical"], "CCO");
    assert_eq!(rows[0]["correct_rank"], 1, "the folded list's first is the target");
    assert_eq!(rows[0]["predictions"][0]["merged_ranks"], serde_json::json!([1, 2]));
    assert_eq!(rows[1]["error"]["code"], "invalid_input");
    assert!(rows[1]["error"]["message"].as_str().unwrap().starts_with("line 2 'C1CC' "), "{}", rows[1]);
    assert!(rows[1].get("predictions").is_none() && rows[1].get("correct_rank").is_none());
    assert_eq!(rows[2]["correct_rank"], serde_json::Value::Null, "the target is not among them");
    assert_eq!(fake.asked.lock().unwrap()[0].inputs, ["C C O", "C N"], "the bad row is not sent");
    let summary = summary.unwrap();
    assert_eq!((summary.total, summary.failed, summary.evaluated), (3, 1, 2));
    assert_eq!(summary.top_k_accuracy, Some(vec![0.5, 0.5, 0.5]));
}

#[tokio::test]
async fn batch_bounds_are_core_errors() {
    let service = service(Fake::answering(&["C"]), InputFormat::Text);
    let too_many = BatchInput { inputs: vec!["a".into(); 10_001], ..Default::default() };
    let e = Job::new(&service, too_many, Caller::default()).await.err().unwrap();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::TooLarge, "10,001 inputs; the limit is 10,000 per request"));
    let mismatched = BatchInput { inputs: vec!["a".into()], targets: Some(vec![]), ..Default::default() };
    let e = Job::new(&service, mismatched, Caller::default()).await.err().unwrap();
    assert_eq!(e.code, ErrorCode::InvalidInput);
}
