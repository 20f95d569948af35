"""localrun.atomic_dynamodb: a conditional write through the local stack's moto server holds, as in DynamoDB.

Eight clients race the same conditional put (the shared limiter's lease condition) on a fresh key, round
after round, with the server's threads switched as often as Python allows. On plain moto some round has
two winners (each side runs in a fresh interpreter: the patch is process-wide); with the patch none does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from localrun import atomic_dynamodb
from localrun.aws import LocalAws

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 8


def _winners(clients: list[Any], key: str) -> int:
    """How many of the clients' simultaneous 'take this lease if it is free' writes succeeded."""
    barrier = threading.Barrier(len(clients))
    won: list[str] = []

    def take(n: int, client: Any) -> None:
        barrier.wait()
        try:
            client.put_item(TableName="leases", Item={"pk": {"S": key}, "owner": {"S": str(n)}, "until": {"N": "2"}},
                            ConditionExpression="attribute_not_exists(pk) OR #u < :now",
                            ExpressionAttributeNames={"#u": "until"}, ExpressionAttributeValues={":now": {"N": "1"}})
            won.append(str(n))
        except client.exceptions.ConditionalCheckFailedException:
            pass

    threads = [threading.Thread(target=take, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(won)


def race(rounds: int, plain: bool) -> dict[str, Any]:
    with LocalAws() as aws:
        if plain:
            atomic_dynamodb.uninstall()  # the server's start installed it
        aws.client("dynamodb").create_table(
            TableName="leases", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        clients = [aws.session().client("dynamodb", endpoint_url=aws.endpoint_url) for _ in range(CLIENTS)]
        sys.setswitchinterval(1e-6)  # the server's threads interleave as finely as they can
        played, doubles = 0, 0
        for played in range(1, rounds + 1):
            winners = _winners(clients, f"lease-{played}")
            assert winners >= 1, "a free lease was refused to every client"
            doubles += winners > 1
            if doubles and plain:  # shown: the race finds it
                break
        return {"installed": atomic_dynamodb.installed(), "rounds": played, "doubles": doubles}


def _race_in_fresh_process(mode: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, mode], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_plain_moto_lets_two_conditional_writes_win_and_the_local_stack_does_not() -> None:
    plain = _race_in_fresh_process("plain")
    assert plain["installed"] is False
    assert plain["doubles"] >= 1, f"the race found no double winner in {plain['rounds']} rounds on plain moto"
    atomic = _race_in_fresh_process("atomic")
    assert atomic["installed"] is True
    assert atomic["doubles"] == 0, f"{atomic['doubles']} of {atomic['rounds']} rounds had two winners"
    assert atomic["rounds"] == 150


if __name__ == "__main__":
    plain_moto = sys.argv[1] == "plain"
    print(json.dumps(race(rounds=600 if plain_moto else 150, plain=plain_moto)))
