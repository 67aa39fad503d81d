"""R18 identity-verifiable: EF.C_DevAut holds the device CVC and its DICA CVC; both verify up to
a root, and the serial is the device CHR minus its last 5 characters."""

import pytest

from hsm_lifecycle.cvc import CvcError, load_roots, verify_c_devaut


@pytest.mark.rule("R18")
@pytest.mark.cost("free")
@pytest.mark.walk(start="any")
def test_r18_device_chain_verifies_to_a_root(hsm):
    ef = hsm.identity()
    roots = load_roots()
    root = hsm.issuer_root(ef)
    hsm.check(root in roots, f"EF.C_DevAut's DICA names issuer {root}, which is none of the known roots {sorted(roots)}", "R18.issuer-is-root")
    try:
        chain = verify_c_devaut(ef, roots[root])
    except CvcError as exc:  # ChainError, and content issuer_root could not yet see (keys, signatures)
        hsm.fail(f"EF.C_DevAut (2F02) does not verify: {exc}", ("R18.chain-verifies",))
    hsm.decided("R18.chain-verifies")
    expected = hsm.target.serial_claimed()
    if not expected:
        pytest.skip("no serial to compare the CHR with: pass --serial (as OpenSC shows it) to judge R18.serial-from-chr")
    hsm.check(chain.serial == expected, f"serial from the CHR is {chain.serial}, the token claims {expected}", "R18.serial-from-chr")
