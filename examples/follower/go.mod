module golat.example/follower

go 1.17
