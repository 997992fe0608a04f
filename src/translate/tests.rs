//! One translation and a batch on the core's `Service`, with a fake
//! translator: no process, no server, no `AppState`.

use std::sync::Mutex;

use super::*;
use crate::inference::{BoxFuture, Hypothesis, InferenceError, Invocation, Matrix};

/// Answers every input with `answers` (tokenized predictions, best first),
/// attention a uniform matrix when asked; remembers what it was asked.
pub(super) struct Fake {
    pub answers: Vec<&'static str>,
    pub asked: Mutex<Vec<Request>>,
    pub fail: Option<InferenceError>,
}

impl Fake {
    pub fn answering(answers: &[&'static str]) -> Arc<Fake> {
        Arc::new(Fake { answers: answers.to_vec(), asked: Mutex::default(), fail: None })
    }
}

impl Translator for Fake {
    fn invoke(&self, request: Request) -> BoxFuture<'_, Result<Invocation, InferenceError>> {
        let results = request
            .inputs
            .iter()
            .map(|input| {
                let cols = input.split(' ').count();
                self.answers
                    .iter()
                    .take(request.params.n_best as usize)
                    .enumerate()
                    .map(|(i, a)| Hypothesis {
                        tokens: a.to_string(),
                        score: -0.1 * (i + 1) as f64,
                        attention: request
                            .params
                            .attention
                            .then(|| Matrix::from_rows(&vec![vec![1.0 / cols as f32; cols]; a.split(' ').count()])),
                    })
                    .collect()
            })
            .collect();
        self.asked.lock().unwrap().push(request);
        let fail = self.fail.clone();
        Box::pin(async move {
            match fail {
                Some(e) => Err(e),
                None => Ok(Invocation { results, request_id: Some("lambda-1".into()), cached: vec![] }),
            }
        })
    }

    fn warmup(&self, _: Instant) -> BoxFuture<'_, Result<(), InferenceError>> {
        Box::pin(async { Ok(()) })
    }

    fn backend(&self) -> &'static str {
        "demo"
    }
}

pub(super) fn service(translator: Arc<dyn Translator>, format: InputFormat) -> Service {
    Service {
        translator,
        reading: Reading { tokenizer: Tokenizer::Chars, format },
        limits: Limits::default(),
        chemistry: crate::chem::pool::pool(),
        stopping: watch::channel(false).1,
    }
}

fn input(text: &str) -> TranslateInput {
    TranslateInput { text: text.into(), ..Default::default() }
}

#[tokio::test]
async fn a_translation_reads_the_input_as_a_molecule_and_shows_canonical_ranked_predictions() {
    let fake = Fake::answering(&["O C C", "C C O", "C ( C"]);
    let service = service(fake.clone(), InputFormat::Smiles);
    let caller = Caller { client: 7, request_id: Some("req-1".into()) };
    let asked = TranslateInput { target: Some("OCC".into()), n_best: Some(3), ..input("C(C)O.O") };
    let (view, lambda_id) = service.predict(asked, &caller).await.unwrap();

    let sent = fake.asked.lock().unwrap();
    assert_eq!(sent[0].inputs, ["C C O . O"], "the canonical form, tokenized");
    assert_eq!(sent[0].request_ids, ["req-1"], "the caller's id goes to the function");
    assert_eq!((sent[0].params.beam, sent[0].params.n_best), (5, 3));
    assert_eq!(lambda_id.as_deref(), Some("lambda-1"));
    assert_eq!(view.canonical.as_deref(), Some("CCO.O"));
    let shown: Vec<(usize, &str, Option<&str>)> =
        view.predictions.iter().map(|p| (p.rank, p.text.as_str(), p.canonical.clone().unwrap().leak_ref())).collect();
    assert_eq!(shown, [(1, "OCC", Some("CCO")), (2, "CCO", Some("CCO")), (3, "C(C", None)]);
    assert!((view.predictions[0].probability - (-0.1f64).exp()).abs() < 1e-12);
    assert_eq!(view.target.as_ref().unwrap().correct_rank, Some(1), "the target matched as a molecule");
    let attention = view.predictions[0].attention.as_ref().unwrap();
    assert_eq!((attention.rows(), attention.cols()), (3, 5), "cut to the prediction's and the input's tokens");
}

/// `Option<String>` as `Option<&str>` for a comparison (the test's own).
trait LeakRef {
    fn leak_ref(self) -> Option<&'static str>;
}

impl LeakRef for Option<String> {
    fn leak_ref(self) -> Option<&'static str> {
        self.map(|s| &*s.leak())
    }
}

#[tokio::test]
async fn removed_stereochemistry_is_said_and_an_input_without_it_says_nothing() {
    let service = service(Fake::answering(&["C C O"]), InputFormat::Smiles);
    let (view, _) = service.predict(input("C[C@H](N)C(=O)O"), &Caller::default()).await.unwrap();
    assert_eq!(view.canonical.as_deref(), Some("CC(N)C(=O)O"));
    assert_eq!(view.notices, [STEREO_REMOVED]);
    let (view, _) = service.predict(input("CC(N)C(=O)O"), &Caller::default()).await.unwrap();
    assert!(view.notices.is_empty());
    let text = service_text();
    let (view, _) = text.predict(input("a/b@c"), &Caller::default()).await.unwrap();
    assert!(view.notices.is_empty(), "text mode reads no chemistry");
}

fn service_text() -> Service {
    service(Fake::answering(&["x"]), InputFormat::Text)
}

#[tokio::test]
async fn folding_and_the_attention_budget_are_applied_after_the_view() {
    let fake = Fake::answering(&["O C C", "C C O"]);
    let mut service = service(fake.clone(), InputFormat::Smiles);
    // Under one result's map (3 x 3 tokens): none is asked for.
    service.limits.max_attention_cells = 8;
    let asked = TranslateInput { fold_duplicates: Some(true), n_best: Some(2), ..input("CCO") };
    let (view, _) = service.predict(asked.clone(), &Caller::default()).await.unwrap();
    assert_eq!(view.predictions.len(), 1, "the same molecule twice is one");
    assert_eq!(view.predictions[0].merged_ranks, Some(vec![1, 2]));
    assert!(view.attention_omitted && view.predictions[0].attention.is_none());
    let why = view.attention_omitted_reason.unwrap();
    assert!(why.starts_with("this answer has 18 attention weights, more than the 8"), "{why}");
    assert_eq!(fake.asked.lock().unwrap().len(), 1);
    assert!(!fake.asked.lock().unwrap()[0].params.attention, "attention past the budget is not even asked for");
    // Room for one result's map: result 1's is asked for beside the answer.
    service.limits.max_attention_cells = 10;
    let (view, _) = service.predict(asked, &Caller::default()).await.unwrap();
    assert!(view.predictions[0].attention.is_some(), "result 1 has its map");
    let why = view.attention_omitted_reason.unwrap();
    assert!(why.starts_with("only result 1 has attention: this answer has 18"), "{why}");
    let asked = fake.asked.lock().unwrap();
    let params: Vec<(u32, bool)> = asked[1..].iter().map(|r| (r.params.n_best, r.params.attention)).collect();
    assert!(params.contains(&(2, false)) && params.contains(&(1, true)), "{params:?}");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_core_error_and_nothing_is_invoked() {
    let fake = Fake::answering(&["C"]);
    let service = service(fake.clone(), InputFormat::Smiles);
    for (text, code, starts) in [
        ("   ", ErrorCode::InvalidInput, "text is empty"),
        ("C1CC", ErrorCode::InvalidInput, "text 'C1CC' "),
        (&"C".repeat(2001), ErrorCode::TooLarge, "text has 2001 characters"),
    ] {
        let e = service.predict(input(text), &Caller::default()).await.unwrap_err();
        assert_eq!(e.code, code, "{text}: {e}");
        assert!(e.message.starts_with(starts), "{text}: {}", e.message);
    }
    let e = service.predict(TranslateInput { beam: Some(99), ..input("CCO") }, &Caller::default()).await.unwrap_err();
    assert_eq!(e.message, "beam must be between 1 and 10, got 99");
    assert!(fake.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_fault_in_the_function_is_a_core_error_that_names_nothing_of_aws() {
    let fake = Arc::new(Fake {
        answers: vec![],
        asked: Mutex::default(),
        fail: Some(InferenceError::Unavailable("arn:aws:lambda:eu-west-1:123456789012:function:T".into())),
    });
    let service = service(fake, InputFormat::Text);
    let e = service.predict(input("hello"), &Caller::default()).await.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::LambdaUnavailable, "the model cannot be reached right now"));
    assert!(e.detail.unwrap().contains("123456789012"), "the log keeps the cause");
}
