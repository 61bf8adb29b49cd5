-- Reserved for SCRAM credentials (DescribeUserScramCredentials / AlterUserScramCredentials):
-- the migration that adds them takes this number. Until then it changes nothing.
SELECT 1;
