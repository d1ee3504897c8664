package digicerttest

// SeedDemo loads the demo data of `make run` (caddyfile-examples/local.Caddyfile):
//
//   - partner key local-digicert-key: account 1001, a parent account;
//   - account 1002, a subaccount of 1001 (it has no partner key of its own);
//   - partner key local-digicert-other-key: account 2001, unrelated to the others;
//   - API keys 12345 (account 1001, "build-server"), 12346 (account 1002, "staging") and
//     67890 (account 2001, "partner-b"), all active.
//
// So local-digicert-key manages 12345 and 12346 and gets 403 for 67890, and
// local-digicert-other-key manages 67890 only.
func (d *Simulator) SeedDemo() {
	d.AddAccount(1001, 0, "local-digicert-key")
	d.AddAccount(1002, 1001, "")
	d.AddAccount(2001, 0, "local-digicert-other-key")

	d.AddKey(12345, 1001, "build-server", "active")
	d.AddKey(12346, 1002, "staging", "active")
	d.AddKey(67890, 2001, "partner-b", "active")
}
