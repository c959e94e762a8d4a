//! Memory proportional to the request: parsing an AdmissionReview costs
//! about its own size, whatever JSON the body holds, and the bodies held at
//! once are bounded by `--max-inflight-body-bytes`.
//!
//! A counting global allocator (this test binary only) measures the peak of
//! live heap bytes while a body is parsed, counting only the measuring
//! thread's allocations (tests run in parallel).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tierguard::admission::request::Request;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// True on the thread whose allocations are counted.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(std::cell::Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && counted() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        if counted() {
            // Saturating: memory allocated before counting began may be freed now.
            let _ = LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(layout.size()))
            });
        }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak live bytes above the start while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let out = f();
    (PEAK.load(Ordering::Relaxed).saturating_sub(start), out)
}

const MIB: usize = 1024 * 1024;

/// A review of a NetworkPolicy CREATE with `junk` put at `place`.
fn review_with(place: &str, junk: Value) -> Vec<u8> {
    let mut r = common::deny_all_create("database", "p").json();
    match place {
        "options" => r["request"]["options"] = junk,
        "unknown request field" => r["request"]["extra"] = junk,
        "unknown spec field" => r["request"]["object"]["spec"]["extra"] = junk,
        "annotation" => {
            r["request"]["object"]["metadata"]["annotations"] = json!({"a": junk.to_string()})
        }
        other => panic!("no place {other}"),
    }
    serde_json::to_vec(&r).expect("json")
}

#[test]
fn parsing_costs_about_the_body_whatever_it_holds() {
    COUNTED.with(|c| c.set(true));
    // ~3 MiB of `[0,0,…]`: a parsed JSON tree would take ~16 bytes of
    // `Value` per 2 bytes of text.
    let zeros = Value::Array(vec![json!(0); 3 * MIB / 2]);
    for place in [
        "options",
        "unknown request field",
        "unknown spec field",
        "annotation",
    ] {
        let body = review_with(place, zeros.clone());
        assert!(body.len() > 3 * MIB - 1024, "{place}: {}", body.len());
        let start = LIVE.load(Ordering::Relaxed);
        let (parse_peak, r) = peak_during(|| Request::parse(&body).expect("parses"));
        let kept = LIVE.load(Ordering::Relaxed).saturating_sub(start);
        // Reading the object is part of the cost.
        let (read_peak, np) =
            peak_during(|| r.object::<k8s_openapi::api::networking::v1::NetworkPolicy>());
        eprintln!("{place}: parse peak {parse_peak} B (kept {kept} B), read peak {read_peak} B");
        let peak = parse_peak.max(kept + read_peak);
        let parsed = (r, np.is_ok());
        let ratio = peak as f64 / body.len() as f64;
        eprintln!(
            "{place}: body {} B, peak {} B, {ratio:.2}x",
            body.len(),
            peak
        );
        assert!(
            ratio <= 2.5,
            "{place}: parsing a {} B body peaked at {peak} B ({ratio:.2}x)",
            body.len()
        );
        assert!(parsed.1, "{place}: the policy is still readable");
        drop(parsed);
    }
}

#[tokio::test]
async fn a_body_over_the_inflight_budget_waits_and_meets_its_deadline_as_a_review() {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let ctx = common::TestCtx::three_tier()
        .max_body(256 * 1024)
        .inflight(256 * 1024)
        .deadline(std::time::Duration::from_millis(300))
        .build();
    // Another request holds the whole budget.
    let mut hold = None;
    ctx.bodies.take(ctx.bodies.kib(), &mut hold).await;
    assert_eq!(ctx.bodies.available_kib(), 0);
    let mut r = common::deny_all_create("database", "p").json();
    r["request"]["object"]["metadata"]["annotations"] = json!({"a": "x".repeat(100_000)});
    let uid = r["request"]["uid"].as_str().expect("uid").to_string();
    let body = String::from_utf8(common::api_server_bytes(&r)).expect("utf-8");
    let send = |ctx, body: String| async move {
        let resp = tierguard::admission::router(ctx, false)
            .oneshot(
                axum::http::Request::post("/validate")
                    .header("content-length", body.len())
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice::<Value>(&bytes).expect("review"),
        )
    };
    let (status, v) = send(ctx.clone(), body.clone()).await;
    assert_eq!(status, axum::http::StatusCode::OK);
    assert_eq!(v["response"]["uid"], uid.as_str());
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert!(
        v["response"]["status"]["message"]
            .to_string()
            .contains("did not complete within 300 ms"),
        "{v}"
    );
    // Once the budget is free again the same request is judged.
    drop(hold);
    let (_, v) = send(ctx.clone(), body).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert_eq!(
        ctx.bodies.available_kib(),
        ctx.bodies.kib() as usize,
        "given back"
    );
}
