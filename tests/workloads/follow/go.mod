module golat.test/follow

go 1.17

require golat.example/follower v0.0.0

replace golat.example/follower => ../../../examples/follower
