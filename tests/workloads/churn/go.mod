module golat.test/churn

go 1.17
