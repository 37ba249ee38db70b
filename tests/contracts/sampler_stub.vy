# pragma version ~=0.4.3
# Stands in for sampler.vy beside rounds.vy: records each draw the round machine asks for.
draws: public(uint256)
last_round: public(uint32)
last_model: public(bytes32)


@external
def draw(job_id: uint256, round: uint32, global_model: bytes32):
    self.draws += 1
    self.last_round = round
    self.last_model = global_model
