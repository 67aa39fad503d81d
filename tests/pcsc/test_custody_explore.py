import pytest
from owner_token import OwnerToken, SO_PIN, PIN
pytestmark = [pytest.mark.pcscd, pytest.mark.opensc]

def test_explore(emulators, tmp_path):
    tok = OwnerToken.start(emulators, tmp_path)
    tok.initialize(); tok.keygen()
    print(tok.status())
    print(tok.objects())
    r = tok.run()
    print(r.rc, r.out[-3000:])
    print(tok.status())
    r = tok.run("--pin", PIN, "--so-pin", SO_PIN)
    print(r.rc, r.out[-3000:])
    print(tok.status()); print(tok.objects())
    assert 0
