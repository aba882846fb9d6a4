//! Drills end to end.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_35_state_network_enrols_through_the_real_flows() {
    std::env::set_var("POCNET_RELAY_BIN", pocnet_tests::bin("pocnet-relay"));
    let dir = tempfile::tempdir().unwrap();
    let states: Vec<String> = pocnet_core::iso3166::ASSIGNED
        .iter()
        .take(35)
        .map(|(c, _)| c.to_string())
        .collect();
    let t = std::time::Instant::now();
    let net = pocnet_client::drill::network::Network::build(
        &dir.path().join("d"),
        &states,
        &[
            pocnet_core::directory::Rank::Primary,
            pocnet_core::directory::Rank::Alternate,
        ],
        &[],
        |_, _, _| {},
    )
    .await
    .unwrap();
    eprintln!("built {} members in {:?}", net.members.len(), t.elapsed());
    assert_eq!(net.members.len(), 70);
}
