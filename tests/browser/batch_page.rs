use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::Locator;

use crate::driver::{Options, browser};
use crate::helpers::{molecule, server};
use crate::ui::until;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tf-batch-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Predictions in a standard CSV that are molecules (a canonical form).
fn records_are_molecules(csv: &str) -> usize {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    reader.records().map(Result::unwrap).filter(|r| !r[4].is_empty() && &r[4] != "(not a molecule)").count()
}

/// Waits for a finished download (Chromium writes `.crdownload` until done).
fn wait_for_download(dir: &Path) -> String {
    wait_for_file(dir, "csv")
}

/// Waits for a finished download whose name ends in `.{extension}`.
fn wait_for_file(dir: &Path, extension: &str) -> String {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == extension) {
                return std::fs::read_to_string(path).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no .{extension} file was downloaded into {}", dir.display());
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_a_file_watch_it_finish_and_download_the_csv() {
    let s = server().spawn();
    let dir = scratch("js");
    let inputs = dir.join("inputs.txt");
    let targets = dir.join("targets.txt");
    let lines: Vec<String> = (0..250).map(|i| molecule(i % 10)).collect();
    std::fs::write(&inputs, lines.join("\n") + "\n").unwrap();
    std::fs::write(&targets, lines.join("\n") + "\n").unwrap();
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let downloads_sdf = downloads.clone();
    let options = Options { downloads: Some(downloads.clone()), ..Default::default() };
    let Some(b) = browser("upload_a_file_watch_it_finish_and_download_the_csv", options).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    b.screenshot("batch-empty-desktop").await;
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(inputs.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#targets")).await.unwrap().send_keys(targets.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#beam")).await.unwrap().select_by_value("2").await.unwrap();
    b.client.find(Locator::Css("#n_best")).await.unwrap().select_by_value("2").await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    let summary = b
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#summary:not([hidden])"))
        .await
        .unwrap();
    let text = summary.text().await.unwrap();
    assert!(text.contains("250") && text.contains("Top-1 accuracy") && text.contains("100.0%"), "{text}");
    let bar = b.client.execute("return document.querySelector('#bar').value", vec![]).await.unwrap();
    assert_eq!(bar.as_f64(), Some(1.0), "the progress bar is full");
    assert_eq!(b.client.find_all(Locator::Css("#table tbody tr")).await.unwrap().len(), 100, "paged");
    let page = b.client.find(Locator::Css("#page")).await.unwrap().text().await.unwrap();
    assert_eq!(page, "Page 1 of 3 · 250 of 250 rows");
    b.client.find(Locator::Css("#next")).await.unwrap().click().await.unwrap();
    let first = b.client.find(Locator::Css("#table tbody tr td")).await.unwrap().text().await.unwrap();
    assert_eq!(first, "101");
    b.client.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    b.screenshot("batch-done-desktop").await;
    b.client.find(Locator::Css("#download")).await.unwrap().click().await.unwrap();
    let csv = tokio::task::spawn_blocking(move || wait_for_download(&downloads)).await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 500, "two predictions per row");
    assert_eq!(&records[0][1], molecule(0));
    assert_eq!((&records[0][4], &records[0][7]), (molecule(0).as_str(), "true"), "canonical, correct");
    // The same rows' predictions as an SDF: one record per prediction that is
    // a molecule, numbered by line.
    b.client.find(Locator::Css("#download-sdf")).await.unwrap().click().await.unwrap();
    let sdf_dir = downloads_sdf.clone();
    let sdf = tokio::task::spawn_blocking(move || wait_for_file(&sdf_dir, "sdf")).await.unwrap();
    let records = sdf.matches("$$$$\n").count();
    let molecules = records_are_molecules(&csv);
    assert_eq!(records, molecules, "one record per prediction that is a molecule");
    assert!(sdf.starts_with("line 1, rank 1\n") && sdf.contains("> <id>\n250\n"), "{}", &sdf[..200]);
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_batch_form_downloads_the_csv() {
    let s = server().spawn();
    let dir = scratch("nojs");
    let inputs = dir.join("inputs.txt");
    std::fs::write(&inputs, "CCO\r\nC1CC\r\n").unwrap();
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let options = Options { javascript: false, downloads: Some(downloads.clone()), ..Default::default() };
    let Some(b) = browser("without_javascript_the_batch_form_downloads_the_csv", options).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(inputs.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    let csv = tokio::task::spawn_blocking(move || wait_for_download(&downloads)).await.unwrap();
    assert!(csv.starts_with("line,source,rank,prediction,canonical,probability,target,correct,error\r\n"), "{csv}");
    // CCO translates (5 predictions); "C1CC" is not a molecule: one error row.
    assert_eq!(csv.lines().count(), 1 + 5 + 1);
    assert!(csv.contains("invalid_input: line 2 'C1CC' cannot be read: a ring is opened and never closed"), "{csv}");
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_a_row_opens_to_every_prediction_and_its_structure() {
    let s = server().spawn();
    let dir = scratch("open");
    let inputs = dir.join("inputs.txt");
    let targets = dir.join("targets.txt");
    std::fs::write(&inputs, "CCO.CC(=O)O\nCC(=O)Oc1ccccc1C(=O)O\n").unwrap();
    std::fs::write(&targets, "OC(C)=O\nC1CC\n").unwrap();
    let options = Options { width: 390, height: 844, ..Default::default() };
    let Some(b) = browser("on_a_phone_a_row_opens", options).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(inputs.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#targets")).await.unwrap().send_keys(targets.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    let wait = || b.client.wait().at_most(Duration::from_secs(20));
    wait().for_element(Locator::Css("#summary:not([hidden])")).await.unwrap();
    let cells: Vec<String> = {
        let mut out = Vec::new();
        for td in b.client.find_all(Locator::Css("#table tbody tr:nth-child(2) td")).await.unwrap() {
            out.push(td.text().await.unwrap());
        }
        out
    };
    assert_eq!(cells[5], "target not readable");
    // The whole row fits a phone's screen: no sideways scrolling to read the
    // probability or whether the target was found.
    let fits = b
        .client
        .execute(
            "const box = document.querySelector('.table-scroll');
             const cells = [...document.querySelectorAll('#table tbody tr:first-child td')]
               .filter((td) => td.offsetParent !== null);
             return [box.scrollWidth <= box.clientWidth,
                     cells.map((td) => td.className + ':' + (td.getBoundingClientRect().right <= window.innerWidth))]",
            vec![],
        )
        .await
        .unwrap();
    b.client.execute("document.querySelector('#table').scrollIntoView()", vec![]).await.unwrap();
    b.screenshot("batch-table-phone").await;
    let widths = b.client.execute("return [...document.querySelectorAll('#table tbody tr:first-child td')].map((td) => [td.className, td.getBoundingClientRect().width, td.scrollWidth])", vec![]).await.unwrap();
    assert_eq!(
        fits,
        serde_json::json!([true, ["num:true", "mono:true", "mono:true", "num:true", "verdict:true"]]),
        "{widths}"
    );
    let toggle = b.client.find(Locator::Css("#table tbody tr:first-child .row-toggle")).await.unwrap();
    assert_eq!(toggle.attr("aria-expanded").await.unwrap().as_deref(), Some("false"));
    toggle.click().await.unwrap();
    let details = wait().for_element(Locator::Css(".row-details")).await.unwrap();
    let text = details.text().await.unwrap();
    assert!(text.contains("Expected product") && text.contains("#5"), "{text}");
    // The input, the expected product, and each of the five components/forms
    // that is a molecule.
    let images = b.client.find_all(Locator::Css(".row-details img")).await.unwrap();
    assert!(images.len() >= 3, "{}", images.len());
    for img in &images {
        b.wait_loaded(img).await;
    }
    b.client.execute("document.querySelector('.row-details').scrollIntoView()", vec![]).await.unwrap();
    b.screenshot("batch-row-open-phone").await;
    // The full answer, with attention heatmaps, on the translate page.
    b.client.find(Locator::Css(".row-details a.open-full")).await.unwrap().click().await.unwrap();
    wait().for_element(Locator::Css("svg.heatmap")).await.unwrap();
    let correct = b.client.find(Locator::Css("li.prediction.correct")).await.unwrap().text().await.unwrap();
    assert!(correct.contains("#1"), "{correct}");
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_runs_the_sample_reactions_and_shows_their_accuracy() {
    let s = server().spawn();
    let Some(b) = browser("one_click_runs_the_sample_reactions", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    b.client.find(Locator::Css("#sample")).await.unwrap().click().await.unwrap();
    let summary = b
        .client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#summary:not([hidden])"))
        .await
        .unwrap();
    let text = summary.text().await.unwrap();
    assert!(text.contains("Rows\n100") && text.contains("Top-1 accuracy"), "{text}");
    let chosen = b.client.execute("return document.querySelector('#inputs').files[0].name", vec![]).await.unwrap();
    assert_eq!(chosen, "sample-reactions.txt", "the files show as chosen");
    b.client.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    b.screenshot("batch-sample-desktop").await;
    b.close().await;
}

/// A stand-in for the load balancer: a stable address that relays each
/// connection to the first backend that accepts it.
async fn relay(backends: Vec<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let backends = backends.clone();
            tokio::spawn(async move {
                for b in &backends {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(b.as_str()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_by_a_scale_down_resumes_by_itself_on_another_server() {
    let emu = crate::emulator::Emulator::start(crate::emulator::Behavior {
        latency: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let mut a = server().lambda(&emu).env("SHUTDOWN_GRACE", "1s").env("LAMBDA_FAN_OUT", "1").spawn();
    let b_server = server().lambda(&emu).env("LAMBDA_FAN_OUT", "1").spawn();
    let origin = relay(vec![
        a.base.trim_start_matches("http://").to_string(),
        b_server.base.trim_start_matches("http://").to_string(),
    ])
    .await;
    let dir = scratch("resume");
    let inputs = dir.join("inputs.txt");
    let lines: Vec<String> = (0..1500).map(molecule).collect();
    std::fs::write(&inputs, lines.join("\n") + "\n").unwrap();
    let Some(b) = browser("a_batch_cut_by_a_scale_down_resumes", Options::default()).await else {
        return;
    };
    b.client.goto(&format!("{origin}/batch")).await.unwrap();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(inputs.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#beam")).await.unwrap().select_by_value("1").await.unwrap();
    b.client.find(Locator::Css("#n_best")).await.unwrap().select_by_value("1").await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    // Once rows arrive from server A, it is scaled down.
    b.client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#table tbody tr")).await.unwrap();
    a.signal("TERM");
    let summary = b
        .client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#summary:not([hidden])"))
        .await
        .unwrap();
    let text = summary.text().await.unwrap();
    assert!(text.contains("Rows\n1500") && text.contains("Translated\n1500"), "{text}");
    let progress = b.client.find(Locator::Css("#progress-text")).await.unwrap().text().await.unwrap();
    assert!(progress.contains("resumed 1 time on another server"), "{progress}");
    let page = b.client.find(Locator::Css("#page")).await.unwrap().text().await.unwrap();
    assert!(page.ends_with("1500 of 1500 rows"), "{page}");
    // No targets were given: no empty Target and Correct at columns.
    let headers = b.client.execute("return [...document.querySelectorAll('#table th')].filter((th) => th.offsetParent !== null).map((th) => th.textContent)", vec![]).await.unwrap();
    assert_eq!(headers, serde_json::json!(["#", "Input", "Top prediction", "Probability"]));
    assert_eq!(tokio::task::spawn_blocking(move || a.wait(Duration::from_secs(30))).await.unwrap(), Some(0));
    b.client.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    b.screenshot("batch-resumed-desktop").await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_would_fail_again_are_summed_up_by_kind_and_not_offered_a_retry() {
    let s = server().spawn();
    let dir = scratch("kinds");
    let inputs = dir.join("inputs.txt");
    std::fs::write(&inputs, "CCO\nC1CC\naspirin\n").unwrap();
    let Some(b) = browser("rows_that_would_fail_again_are_summed_up_by_kind", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(inputs.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    let summary = b
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#summary:not([hidden])"))
        .await
        .unwrap();
    let text = summary.text().await.unwrap();
    assert!(
        text.contains("2 rows failed. Every failed row: the input cannot be read (each row says why).")
            && text.contains("correct those inputs and send them again"),
        "one kind, once, not each row's own message: {text}"
    );
    let retry = b.client.find(Locator::Css("#retry")).await.unwrap();
    assert!(!retry.is_displayed().await.unwrap(), "no retry for rows that would fail again");
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[ignore = "a browser test: needs Chromium and chromedriver (apt-get install chromium chromium-driver); cargo test -- --include-ignored runs it, as .ci/run does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cancelled_before_its_first_row_offers_nothing_to_download() {
    let emu = crate::emulator::Emulator::start(crate::emulator::Behavior::default()).await;
    emu.hold();
    let s = server().lambda(&emu).spawn();
    let dir = scratch("cancel");
    let inputs = dir.join("inputs.txt");
    std::fs::write(&inputs, (0..20).map(molecule).collect::<Vec<_>>().join("\n")).unwrap();
    let Some(b) = browser("a_batch_cancelled_before_its_first_row", Options::default()).await else {
        return;
    };
    b.client.goto(&s.url("/batch")).await.unwrap();
    b.client.find(Locator::Css("#inputs")).await.unwrap().send_keys(inputs.to_str().unwrap()).await.unwrap();
    b.client.find(Locator::Css("#start")).await.unwrap().click().await.unwrap();
    // The function holds every invocation: no row can arrive.
    let held = async {
        while emu.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), held).await.expect("the batch reaches the function");
    // Before any row is back the page says the rows are with the model, and
    // its bar shows activity rather than a still 0%.
    let said = "document.querySelector('#progress-text').textContent.startsWith('0 of 20 rows · 20 being translated')";
    until(&b, said).await;
    let position = b.client.execute("return document.querySelector('#bar').position", vec![]).await.unwrap();
    assert_eq!(position.as_f64(), Some(-1.0), "an indeterminate bar while nothing is back");
    b.client.find(Locator::Css("#cancel")).await.unwrap().click().await.unwrap();
    let text =
        b.client.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css("#start:not([disabled])")).await;
    text.expect("the batch stops");
    for id in ["#download", "#download-sdf"] {
        let disabled = b.client.find(Locator::Css(id)).await.unwrap().attr("disabled").await.unwrap();
        assert!(disabled.is_some(), "{id}: nothing arrived, nothing to download");
    }
    emu.release();
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
