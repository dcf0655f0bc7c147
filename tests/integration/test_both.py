"""Discord and Matrix in one cohort process, over one store."""
from conftest import Running
from fake_discord import TOKEN as DISCORD_TOKEN, FakeDiscord, interaction
from fake_matrix import BOT, TOKEN as MATRIX_TOKEN, FakeMatrix
from store_view import events


def test_both_platforms_in_one_process(cohort):
    dc, hs = FakeDiscord(), FakeMatrix()
    dc.start()
    hs.start()
    try:
        (cohort.workdir / "cohort.toml").write_text(f"""
[discord]
enabled = true
token = "{DISCORD_TOKEN}"
api_url = "{dc.api_url}"
[matrix]
enabled = true
homeserver = "{hs.url}"
user_id = "{BOT}"
access_token = "{MATRIX_TOKEN}"
""")
        room = "!study:fake.test"
        hs.create_room(room, members=["@ana:fake.test"])
        run = Running(cohort).start()
        try:
            dc.ready_connection()
            hs.wait_for(hs.synced_to_end, 10, "the first sync")
            dc.dispatch("INTERACTION_CREATE", interaction(
                1, "done", [{"name": "topic", "value": "Kafka"}], guild="77"))
            ev = hs.say(room, "@ana:fake.test", "!done Docker")
            dc.wait_rest("POST", r"/interactions/1/tok-1/callback")
            hs.wait_for(lambda: [r for r in hs.sends() if ev in str(r["json"])], 5,
                        "the Matrix reply")
        finally:
            run.stop()
        rows = sorted((e["group"], e["topic_id"]) for e in events(cohort))
        assert rows == [("discord:77", "kafka"), (f"matrix:{room}", "docker")]
    finally:
        dc.stop()
        hs.stop()
