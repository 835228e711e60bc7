-- Trust boundaries (issue 12).

-- An accepted delivery whose signed `id` was first accepted with another transaction of the
-- same organization: accepted, and marked here for a person to look at.
ALTER TABLE deliveries ADD COLUMN suspect text;
CREATE INDEX deliveries_suspect ON deliveries (received_at DESC) WHERE suspect IS NOT NULL;

-- Duplicate and rejected deliveries expire (DELIVERY_LOG_RETENTION): found by age.
CREATE INDEX deliveries_expiring ON deliveries (received_at) WHERE outcome <> 'accepted';
