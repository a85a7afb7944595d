//! Reading the service's Prometheus metrics the way a scraper does: `GET /metrics` on the metrics listener, then
//! one sample by its series as the text format writes it (`name{labels}`, labels in the encoder's order).

/// The text of `GET http://127.0.0.1:<port>/metrics` (it must answer 200).
pub async fn scrape(port: u16) -> String {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET /metrics on port {port}");
    r.text().await.unwrap()
}

/// The value of the sample `series` (`name{labels}`, as written), if the text has it.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

/// [`sample`], failing the test (with the whole text) when the series is missing.
pub fn value(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}
