//! Connecting to anvil over HTTP and over a WebSocket, with and without a wallet: the chain and
//! the deployment tools connect through the same code (`deployment::connect` here).
//!
//! Needs the pinned anvil (`npm ci` in `contracts/`, which `scripts/test.sh` runs first).

use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use contracts::Anvil;
use contracts::deployment::{chain_id, connect};

#[tokio::test]
async fn http_and_websocket_endpoints_connect() -> Result<(), Box<dyn std::error::Error>> {
    let anvil = Anvil::start()?;
    let http = anvil.endpoint();
    let ws = http.replacen("http://", "ws://", 1);
    for endpoint in [&http, &ws] {
        let signer: PrivateKeySigner = anvil.keys()[0].parse()?;
        let address = signer.address();
        let wallet = connect(endpoint, Some(signer)).await?;
        assert_eq!(chain_id(&wallet).await?, 31337, "{endpoint}");
        assert!(wallet.get_balance(address).await? > alloy::primitives::U256::ZERO, "{endpoint}");
        let reader = connect(endpoint, None).await?;
        assert_eq!(chain_id(&reader).await?, 31337, "{endpoint}");
    }
    let refused = connect("ftp://127.0.0.1:1", None).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("unsupported scheme ftp"), "{refused}");
    Ok(())
}
